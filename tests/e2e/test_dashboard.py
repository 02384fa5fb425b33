"""A user's walk through the dashboard in Chromium: dataset, augmentation, a live training that is
refreshed and stopped, then the evaluation of that run. Each page is saved as a screenshot (conftest.SCREENSHOTS).

The tests share one server and run in file order (the Evaluate test reads the run that the Train
test stopped; run alone, it trains a one-epoch run first through the command line).
"""
from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Page, expect

from .conftest import SCREENSHOTS

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


# Where a confusion-matrix cell (row: true class, column: predicted) is drawn on the page.
CELL_CENTRE = """([row, col]) => {
  const gd = [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
    .find(g => g.data && g.data.some(d => d.type === 'heatmap'));
  gd.scrollIntoView({block: 'center'});
  const box = gd.querySelector('.nsewdrag').getBoundingClientRect();
  const L = gd._fullLayout;
  return [box.left + L.xaxis.d2p(col), box.top + L.yaxis.d2p(row)];
}"""


HEATMAP_DRAWN = """() => [...document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')]
  .some(g => g.data && g.data.some(d => d.type === 'heatmap'))"""


def test_clicking_a_cell_of_the_confusion_matrix_shows_its_images(page: Page, app_url, a_run):
    page.goto(app_url)
    go_to(page, "Evaluate")
    main = main_area(page)
    cells = main.get_by_role("radiogroup", name="Show the images of a cell").get_by_role("radio")
    expect(cells.first).to_be_visible()
    # The diagonal cell of the first class (its pill says "✓ a → a (n)"), chosen on the matrix itself.
    wanted = [c for c in cells.all_inner_texts() if c.startswith("✓")][0]
    true_class = wanted.split(" ", 1)[1].split(" → ")[0]
    row = [c.split(" ", 1)[1].split(" → ")[0] for c in cells.all_inner_texts()]
    classes = sorted(set(row))  # the matrix's order is the classes' order, sorted by the scan
    index = classes.index(true_class)
    idle(page)
    page.wait_for_function(HEATMAP_DRAWN, timeout=60_000)
    x, y = page.evaluate(CELL_CENTRE, [index, index])
    page.mouse.move(x, y)
    page.wait_for_timeout(300)
    page.mouse.click(x, y)
    page.wait_for_timeout(500)
    idle(page)
    count = int(wanted.rsplit("(", 1)[1].rstrip(")"))
    expect(main.get_by_text(f"True {true_class}, predicted {true_class}", exact=False)).to_be_visible()
    expect(main.locator('[data-testid="stImage"]')).to_have_count(min(count, 24))
    expect(cells.filter(has_text=wanted)).to_have_attribute("aria-checked", "true")
    no_exception_box(page)


def test_a_run_is_renamed_and_deleted_from_the_runs_table(page: Page, app_url, a_run):
    import shutil

    victim = sorted(p for p in a_run.glob("*/") if (p / "metrics.json").exists())[0]
    copy = victim.with_name(victim.name + "-copy")
    shutil.copytree(victim, copy)
    # The walk's training was started by another browser (its ?me= token): this copy is anyone's, as
    # a run from the command line is.
    status = json.loads((copy / "status.json").read_text())
    status.pop("owner", None)
    (copy / "status.json").write_text(json.dumps(status))
    page.goto(app_url)
    go_to(page, "Evaluate")
    main = main_area(page)
    main.get_by_text("Rename or delete a run").click()
    main.get_by_label("Run", exact=True).click()
    page.get_by_role("option", name=copy.name).click()
    idle(page)
    main.get_by_label("Name", exact=True).fill("copy to rename")
    main.get_by_role("button", name="Rename").click()
    idle(page)
    expect(main.get_by_test_id("stDataFrame").first).to_contain_text("copy to rename")
    main.get_by_role("button", name="Delete…").click()
    expect(main).to_contain_text("cannot be undone")
    assert copy.exists()
    main.get_by_role("button", name="Delete for good").click()
    idle(page)
    expect(main.get_by_test_id("stDataFrame").first).not_to_contain_text("copy to rename")
    assert not copy.exists() and victim.exists()
    no_exception_box(page)
