"""Presenter mode in Chromium at a projector's 1280×720: larger type, the explanation folded, the
mode kept in the address across pages. Screenshots: presenter-<page>.png (conftest.SCREENSHOTS)."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .test_dashboard import go_to, idle, main_area, no_exception_box, screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

ROOT_FONT = "() => getComputedStyle(document.documentElement).fontSize"
LARGER = "(normal) => parseFloat(getComputedStyle(document.documentElement).fontSize) > 1.2 * normal"


def test_presenter_mode_is_larger_and_stays_on_across_pages(page: Page, app_url, a_run):
    page.set_viewport_size({"width": 1280, "height": 720})
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Dataset", level=1)).to_be_visible()
    normal = float(page.evaluate(ROOT_FONT).rstrip("px"))
    page.get_by_test_id("stSidebar").get_by_text("Presenter mode").click()
    idle(page)
    page.wait_for_function(LARGER, arg=normal, timeout=30_000)
    assert "present=1" in page.url
    expect(main_area(page).get_by_text("What this page shows")).to_be_visible()
    screenshot(page, "presenter-dataset")
    for name in ("Evaluate", "Train"):
        go_to(page, name)
        idle(page)
        assert "present=1" in page.url
        page.wait_for_function(LARGER, arg=normal, timeout=30_000)
        no_exception_box(page)
        screenshot(page, f"presenter-{name.lower()}")
    page.reload()
    expect(page.get_by_role("heading", name="Train", level=1)).to_be_visible()
    page.wait_for_function(LARGER, arg=normal, timeout=30_000)  # a refresh keeps it
