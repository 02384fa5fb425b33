"""Presenter mode: ?present=1 (or the sidebar toggle) gives larger type, fewer images per row and
each page's explanation folded; the address keeps it across a refresh and every page."""
from __future__ import annotations

import pytest

from apptest_helpers import assert_clean, isolate_app  # noqa: E402
from streamlit.testing.v1 import AppTest

from apptest_helpers import APP  # noqa: E402
from ui import presenter

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(autouse=True)
def app(tmp_path, samples_dir, monkeypatch):
    isolate_app(monkeypatch, tmp_path / "runs", tmp_path, samples_dir)


def styled(at: AppTest) -> bool:
    return any(presenter.STYLE.strip() in str(getattr(e, "proto", "")) or "font-size: 21px" in str(e.proto)
               for e in at.get("html"))


def test_the_address_turns_presenter_mode_on_and_it_survives_navigation():
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params[presenter.PARAM] = "1"
    at.run()
    assert_clean(at)
    assert at.toggle(key=presenter.KEY).value and styled(at)
    assert any(e.label == "What this page shows" for e in at.expander)  # the explanation folded
    at.switch_page("app_pages/evaluate.py").run()
    assert at.query_params[presenter.PARAM] == ["1"] or at.query_params[presenter.PARAM] == "1"
    assert styled(at)


def test_the_toggle_turns_it_off_and_the_address_forgets_it():
    at = AppTest.from_file(APP, default_timeout=90)
    at.query_params[presenter.PARAM] = "1"
    at.run()
    at.toggle(key=presenter.KEY).set_value(False).run()
    assert_clean(at)
    assert presenter.PARAM not in at.query_params and not styled(at)
    assert not any(e.label == "What this page shows" for e in at.expander)


def test_fewer_larger_images_per_row_while_presenting(monkeypatch):
    monkeypatch.setattr(presenter, "on", lambda: True)
    assert presenter.columns(6) == 4 and presenter.columns(3) == 2
    monkeypatch.setattr(presenter, "on", lambda: False)
    assert presenter.columns(6) == 6
