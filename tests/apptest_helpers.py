"""Helpers shared by the AppTest page tests."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def isolate_app(monkeypatch, runs, data_root, samples_dir) -> None:
    """The app of one test: its own runs folder, data root and (shared) samples folder, a fresh job
    registry, empty Streamlit caches."""
    import streamlit as st

    import core.jobs

    monkeypatch.setenv("TRANSFERLAB_RUNS_DIR", str(runs))
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(data_root))
    monkeypatch.setenv("TRANSFERLAB_SAMPLES_DIR", str(samples_dir))
    monkeypatch.setattr(core.jobs, "REGISTRY", core.jobs.JobRegistry())
    st.cache_data.clear()
    st.cache_resource.clear()


def open_app(page: str | None = None) -> AppTest:
    """The app after its first run, switched to app_pages/<page>.py; fails on any exception box."""
    at = AppTest.from_file(APP, default_timeout=90).run()
    if page:
        at.switch_page(f"app_pages/{page}.py").run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    """No exception box, and no unexpected error that app.py caught and logged in its place."""
    assert not at.exception, [e.value for e in at.exception]
    unexpected = [e.value for e in at.error if e.value.startswith(UNEXPECTED)]
    assert not unexpected, unexpected


UNEXPECTED = "Something went wrong on this page."  # app.py's message for an error nobody expected


def texts(at: AppTest) -> str:
    """All the text a user reads on the page, one element per line."""
    parts = [m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
    parts += [w.value for w in at.warning] + [i.value for i in at.info] + [m.label for m in at.metric]
    parts += [s.value for s in at.subheader]
    return "\n".join(str(p) for p in parts)


def start_small_training(at: AppTest, strategy="scratch", epochs=2, size=48) -> AppTest:
    """On the Train page: a tiny training that takes a few seconds on two cores."""
    at.radio(key="strategy").set_value(strategy).run()
    at.number_input(key="image_size").set_value(size).run()  # the weights Start needs depend on the size
    at.select_slider(key="batch_size").set_value(8)
    at.number_input(key=f"epochs_{strategy}").set_value(epochs)
    at.button(key="start").click().run()
    assert_clean(at)
    return at
