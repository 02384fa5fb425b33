"""A recipe in Chromium: pick it on the Train page, make it fast, start, and see on the run's status
which recipe it was and what the reference published."""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .test_dashboard import go_to, idle, main_area, no_exception_box, screenshot, scroll_to

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

RECIPE = "Deep Learning with Python §5.2: a small convnet from scratch"


def set_number(main, label: str, value: int) -> None:
    field = main.get_by_label(label, exact=True)
    field.fill(str(value))
    field.press("Enter")


def test_a_recipe_fills_the_form_and_its_run_shows_the_published_figure(page: Page, app_url):
    page.goto(app_url)
    go_to(page, "Train")
    main = main_area(page)
    main.get_by_test_id("stSelectbox").filter(has_text="Recipe").click()
    page.get_by_role("option", name=RECIPE).click()
    idle(page)
    # The form now holds the book's settings, with the source and the published figure beside them.
    expect(main.get_by_label("Image size (px)", exact=True)).to_have_value("150")
    expect(main).to_contain_text("Source:")
    expect(main).to_contain_text("71% validation accuracy")
    no_exception_box(page)
    screenshot(page, "train_recipe")

    set_number(main, "Image size (px)", 48)  # a training of seconds on the built-in sample
    idle(page)
    set_number(main, "Epochs", 1)
    idle(page)
    expect(main).to_contain_text("Changed from the recipe: epochs, image_size")
    main.get_by_role("button", name="Start training").click()
    expect(main.get_by_test_id("stMetric").filter(has_text="Best validation accuracy")).to_be_visible(
        timeout=180_000)
    status = main.get_by_text(f"Recipe: {RECIPE}")
    expect(status).to_contain_text("published 71% validation accuracy · changed: epochs, image_size")
    scroll_to(main.get_by_role("heading", name="Run ", level=3))
    no_exception_box(page)
