"""A user's walk through the dashboard in Chromium: dataset, augmentation, a live training that is
refreshed and stopped, then the evaluation of that run. Each page is saved as a screenshot (conftest.SCREENSHOTS).

The tests share one server and run in file order (the Evaluate test reads the run that the Train
test stopped; run alone, it trains a one-epoch run first through the command line).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from playwright.sync_api import Page, expect

from .conftest import ROOT, SCREENSHOTS

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

# The live chart's first trace is the per-batch training loss.
CURVE_POINTS = """() => {
  const charts = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')];
  const live = charts.find(g => g.data && g.data.length && g.data[0].name === 'train (per batch)');
  return live ? live.data[0].x.length : 0;
}"""


def go_to(page: Page, name: str) -> None:
    """Click a page in the sidebar navigation and wait for its title."""
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()


def idle(page: Page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=60_000)


def no_exception_box(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.mouse.move(0, 799)  # no hover toolbars in the picture
    page.wait_for_timeout(400)  # let the last images and charts paint
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def scroll_to(locator) -> None:
    """Scroll so that this element is at the top of the window (for the screenshots)."""
    locator.evaluate("e => e.scrollIntoView({block: 'start'})")


def main_area(page: Page):
    return page.get_by_test_id("stMain")


def wait_for_points(page: Page, more_than: int, timeout: float = 60) -> int:
    deadline = time.time() + timeout
    while time.time() < deadline:
        n = page.evaluate(CURVE_POINTS)
        if n > more_than:
            return n
        page.wait_for_timeout(300)
    page.screenshot(path=str(SCREENSHOTS / "failed-curve.png"), full_page=True)
    raise AssertionError(f"the live curve did not grow past {more_than} points in {timeout} s")


def test_dataset_page_opens_on_the_sample(page: Page, app_url):
    page.goto(app_url)
    expect(page.get_by_role("heading", name="Dataset", level=1)).to_be_visible()
    metric = page.get_by_test_id("stMetric").filter(has_text="Classes")
    expect(metric.get_by_test_id("stMetricValue")).to_have_text("3")
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar).to_contain_text("built-in shapes sample")
    expect(sidebar).to_contain_text("CPU")
    expect(main_area(page).get_by_test_id("stPlotlyChart")).to_have_count(2)
    expect(main_area(page).get_by_test_id("stImage")).to_have_count(18)  # 6 per class
    expect(main_area(page)).to_contain_text("Every file in the folder is a usable image.")
    idle(page)
    no_exception_box(page)
    screenshot(page, "dataset")
    scroll_to(page.get_by_test_id("stMetric").first)
    screenshot(page, "dataset-contents")


def test_augment_grid_follows_the_sliders(page: Page, app_url):
    page.goto(app_url)
    go_to(page, "Augment")
    images = main_area(page).locator('[data-testid="stImage"] img')
    expect(images).to_have_count(12)
    idle(page)
    before = images.nth(1).get_attribute("src")
    rotation = main_area(page).get_by_test_id("stSlider").filter(has_text="Rotation")
    rotation.get_by_role("slider").focus()
    for _ in range(6):
        page.keyboard.press("ArrowRight")
    expect(rotation.get_by_test_id("stSliderThumbValue")).to_have_text("70°")
    expect(images.nth(1)).not_to_have_attribute("src", before)
    expect(main_area(page)).to_contain_text("rotation ±70°")
    idle(page)
    no_exception_box(page)
    screenshot(page, "augment")


def test_training_streams_survives_a_refresh_and_stops(page: Page, app_url):
    page.goto(app_url)
    go_to(page, "Train")
    main = main_area(page)
    # Fine-tuning shows the base's layers: those that the slider unfreezes are marked.
    main.get_by_test_id("stRadio").get_by_text("Fine-tuning", exact=True).click()
    expect(main).to_contain_text("Layers unfrozen")
    expect(main.get_by_test_id("stMetric").filter(has_text="Layers unfrozen")).to_contain_text("18 of 52")  # MobileNetV2's top 54 layers: 18 convolutions
    idle(page)
    screenshot(page, "train-settings")
    scroll_to(main.get_by_test_id("stExpander").first)
    screenshot(page, "train-layers")
    main.get_by_test_id("stRadio").get_by_text("From scratch", exact=True).click()
    size = main.get_by_label("Image size (px)", exact=True)
    size.fill("64")
    size.press("Enter")
    epochs = main.get_by_label("Epochs", exact=True)
    epochs.fill("60")
    epochs.press("Enter")
    idle(page)
    main.get_by_role("button", name="Start training").click()

    # The curve gains points while it trains.
    first = wait_for_points(page, 2, timeout=90)
    later = wait_for_points(page, max(first, 17))  # three epochs of 6 batches: a curve worth a picture
    expect(page.get_by_test_id("stSidebar")).to_contain_text("running")
    scroll_to(main.get_by_role("heading", name="Run ", level=3))
    screenshot(page, "train")

    # A refresh re-attaches to the job and shows its whole history so far.
    page.reload()
    expect(page.get_by_role("heading", name="Train", level=1)).to_be_visible()
    assert wait_for_points(page, later - 1) >= later
    # So does leaving the page and coming back.
    go_to(page, "Evaluate")
    expect(main_area(page).get_by_test_id("stDataFrame").first).to_be_visible()
    go_to(page, "Train")
    wait_for_points(page, later)
    no_exception_box(page)

    main.get_by_role("button", name="Stop").click()
    expect(main).to_contain_text("stopped", timeout=60_000)
    expect(main.get_by_test_id("stMetric").filter(has_text="Best validation accuracy")).to_be_visible()
    expect(page.get_by_test_id("stSidebar")).to_contain_text("stopped")
    no_exception_box(page)


@pytest.fixture
def a_run(server_dir):
    """At least one evaluated run in the server's runs folder (trained here if the walk did not)."""
    runs = server_dir / "runs"
    if not any(p.joinpath("metrics.json").exists() for p in runs.glob("*/")):
        from core.sample import ensure_shapes

        data = ensure_shapes(str(server_dir / "samples"))
        subprocess.run([sys.executable, "-m", "core.train", "--data", data, "--strategy", "scratch",
                        "--image-size", "48", "--epochs", "1", "--runs-dir", str(runs)],
                       cwd=ROOT, check=True, capture_output=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return runs


def test_evaluate_opens_the_images_of_a_confusion_cell(page: Page, app_url, a_run):
    page.goto(app_url)
    go_to(page, "Evaluate")
    main = main_area(page)
    expect(main).to_contain_text("All runs")
    expect(main).to_contain_text("Test results")
    cells = main.get_by_role("radiogroup", name="Show the images of a cell").get_by_role("radio")
    expect(cells.first).to_be_visible()
    target = cells.nth(1) if cells.count() > 1 else cells.first
    label = target.inner_text()
    target.click()
    idle(page)
    count = int(label.rsplit("(", 1)[1].rstrip(")"))
    expect(main.get_by_text(f"{count} images", exact=False)).to_be_visible()
    expect(main.locator('[data-testid="stImage"]')).to_have_count(min(count, 24))
    no_exception_box(page)
    scroll_to(main.get_by_role("heading", name="Evaluate", level=1))
    screenshot(page, "evaluate")
    scroll_to(main.get_by_role("heading", name="Test results", level=3))
    screenshot(page, "evaluate-cell")
