"""Inspect and Visualize in Chromium, on a trained run: every panel renders, the optimizations show
their progress and finish, Cancel stops one midway. Saves docs/screenshots/inspect.png and
visualize.png (plus visualize_ideal.png).

The run is a one-epoch scratch convnet trained here through the command line (seconds), or, when
TRANSFERLAB_E2E_RUN names a run folder (e.g. MobileNetV2 on cats vs dogs), a copy of that run: the
screenshots in docs/ are taken that way. Uses the shared server of conftest.py.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from playwright.sync_api import Page, expect

from .conftest import ROOT, SCREENSHOTS, VIEWPORT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(480)]
LONG = 180_000  # ms: an optimization on a real backbone, on two busy cores


@pytest.fixture(scope="module")
def run_id(server_dir) -> str:
    """The id of the run the pages look at, in the server's runs folder."""
    runs = server_dir / "runs"
    given = os.environ.get("TRANSFERLAB_E2E_RUN")
    if given:
        target = runs / os.path.basename(os.path.normpath(given))
        if not target.exists():
            shutil.copytree(given, target)
        return target.name
    from core.sample import ensure_shapes

    data = ensure_shapes(str(server_dir / "samples"))
    out = subprocess.run([sys.executable, "-m", "core.train", "--data", data, "--strategy", "scratch",
                          "--image-size", "48", "--epochs", "1", "--runs-dir", str(runs)],
                         cwd=ROOT, check=True, capture_output=True, text=True,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    return os.path.basename(json.loads(out.stdout.strip().splitlines()[-1])["run_dir"])


def main_area(page: Page):
    return page.get_by_test_id("stMain")


def open_page(page: Page, app_url: str, name: str, run_id: str) -> None:
    """Open a page from the sidebar and choose the run."""
    page.goto(app_url)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    picker = main_area(page).get_by_role("combobox", name="Trained run")
    expect(picker).to_be_visible()
    if run_id not in picker.input_value():
        open_options(picker)
        page.get_by_role("option").filter(has_text=run_id).click()
    expect(picker).to_have_value(re.compile(re.escape(run_id)))
    idle(page)


def open_options(combobox) -> None:
    """Open a selectbox's list of options (a click alone only focuses it)."""
    combobox.click()
    combobox.press("ArrowDown")


def shown_tab(page: Page):
    """The tab panel on screen (the hidden tabs are rendered too)."""
    return main_area(page).locator('[role="tabpanel"]').filter(visible=True)


def idle(page: Page, timeout: float = LONG) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)


def no_exception_box(page: Page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def screenshot(page: Page, name: str) -> None:
    """The whole page: the viewport is made as tall as the main area (which scrolls, not the body)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate('() => document.querySelector(\'[data-testid="stMain"]\').scrollHeight')
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, VIEWPORT["height"]), 4000)})
    page.wait_for_timeout(800)  # let the images and charts paint at the new size
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
    page.set_viewport_size(VIEWPORT)


def test_inspect_renders_every_panel(page: Page, app_url, run_id):
    open_page(page, app_url, "Inspect", run_id)
    main = main_area(page)
    for heading in ("Class probabilities", "Intermediate activations", "Where the model looks (Grad-CAM)"):
        expect(main.get_by_role("heading", name=heading)).to_be_visible()
    expect(main.get_by_test_id("stPlotlyChart")).to_have_count(1)
    expect(main.locator('[data-testid="stImage"] img')).to_have_count(4)
    expect(main).to_contain_text("evidence for")
    # Another layer for the activations: the grid is drawn again.
    grid = main.locator('[data-testid="stImage"] img').nth(1)
    before = grid.get_attribute("src")
    open_options(main.get_by_role("combobox", name="Layer (bottom to top)"))
    page.get_by_role("option").nth(2).click()
    expect(grid).not_to_have_attribute("src", before)
    idle(page)
    no_exception_box(page)
    screenshot(page, "inspect")


def test_visualize_renders_every_panel_and_cancels(page: Page, app_url, run_id):
    open_page(page, app_url, "Visualize", run_id)
    main = main_area(page)
    expect(main.get_by_role("heading", name="Filter patterns")).to_be_visible()

    # Filter patterns: the grid of the first 8 filters.
    shown_tab(page).get_by_role("button", name="Draw the patterns").click()
    tab = shown_tab(page)
    expect(tab).to_contain_text("8 filters in", timeout=LONG)
    expect(tab.locator('[data-testid="stImage"] img')).to_have_count(8)
    idle(page)
    no_exception_box(page)
    screenshot(page, "visualize_filters")

    # Ideal class image: cancelled midway at the most steps, then drawn to the end.
    main.get_by_role("tab", name="Ideal class image").click()
    tab = shown_tab(page)
    steps = tab.get_by_test_id("stSlider").filter(has_text="Steps")
    steps.get_by_role("slider").focus()
    page.keyboard.press("End")
    expect(steps.get_by_test_id("stSliderThumbValue")).to_have_text("500")
    idle(page)
    tab.get_by_role("button", name="Draw the ideal image").click()
    expect(tab.get_by_test_id("stProgress")).to_be_visible(timeout=LONG)
    tab.get_by_role("button", name="Cancel").click()
    expect(tab).to_contain_text("cancelled at step", timeout=60_000)
    idle(page)
    no_exception_box(page)
    steps.get_by_role("slider").focus()
    page.keyboard.press("Home")  # 20 steps
    for _ in range(5):
        page.keyboard.press("ArrowRight")  # 70 steps
    expect(steps.get_by_test_id("stSliderThumbValue")).to_have_text("70")
    idle(page)
    tab.get_by_role("button", name="Draw the ideal image").click()
    expect(tab).to_contain_text("the model gives it", timeout=LONG)
    idle(page)
    no_exception_box(page)
    screenshot(page, "visualize_ideal")

    # Adversarial examples: FGSM at once, then the targeted attack, then accuracy against epsilon.
    main.get_by_role("tab", name="Adversarial examples").click()
    tab = shown_tab(page)
    expect(tab).to_contain_text("adversarial (±2/255)")
    tab.get_by_test_id("stRadio").filter(has_text="Attack").get_by_text("Targeted (iterative)").click()
    expect(tab).to_contain_text("Target ", timeout=LONG)
    idle(page)
    tab.get_by_role("button", name="Measure").click()
    chart = tab.locator('[data-testid="stPlotlyChart"]').filter(has_text="accuracy under FGSM")
    expect(chart).to_be_visible(timeout=LONG)
    idle(page)
    no_exception_box(page)
    screenshot(page, "visualize")
