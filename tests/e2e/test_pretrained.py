"""Predict, Inspect and Visualize in Chromium on the pretrained ImageNet classifier (MobileNetV2,
offline from ../shared/weights), with no trained run: the sample cat photo gets its top-5, Grad-CAM
explains a class chosen by typing its name, the ideal image is drawn with and without
regularization, and the targeted attack runs. Saves docs/screenshots/pretrained_predict.png,
pretrained_inspect.png, pretrained_visualize_ideal.png and pretrained_visualize.png (with
TRANSFERLAB_SCREENSHOTS=docs/screenshots). Uses the shared server of conftest.py.
"""
from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from .conftest import SHARED_WEIGHTS
from .test_inside import LONG, idle, main_area, no_exception_box, open_options, screenshot, shown_tab

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600),
              pytest.mark.skipif(not (SHARED_WEIGHTS / "models" / "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224.h5")
                                 .is_file(), reason="MobileNetV2's ImageNet weights are not in ../shared/weights")]
CAT_CLASSES = ("tabby", "tiger cat", "Egyptian cat", "Persian cat")


def open_pretrained(page: Page, app_url: str, name: str) -> None:
    """Open a page from the sidebar and choose the pretrained classifier as its model."""
    page.goto(app_url)
    idle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=name).click()
    expect(page.get_by_role("heading", name=name, level=1)).to_be_visible()
    main_area(page).get_by_test_id("stRadio").filter(has_text="Model").get_by_text(
        "A pretrained ImageNet classifier").click()
    expect(main_area(page).get_by_role("combobox", name="Pretrained classifier")).to_have_value(
        "MobileNetV2 · 224 px", timeout=LONG)
    idle(page)


def test_predict_top_five_of_the_sample_cat(page: Page, app_url):
    open_pretrained(page, app_url, "Predict")
    main = main_area(page)
    expect(main.get_by_role("heading", name="Top-5 ImageNet classes")).to_be_visible()
    expect(main.get_by_role("combobox", name="Sample image")).to_have_value("Cat")
    expect(main.get_by_test_id("stDataFrame")).to_have_count(1, timeout=LONG)
    expect(main.get_by_test_id("stMultiSelect")).to_contain_text("MobileNetV2")
    idle(page)
    no_exception_box(page)
    screenshot(page, "pretrained_predict")


def test_inspect_grad_cam_of_a_class_typed_by_name(page: Page, app_url):
    open_pretrained(page, app_url, "Inspect")
    main = main_area(page)
    for heading in ("Class probabilities", "Intermediate activations", "Where the model looks (Grad-CAM)"):
        expect(main.get_by_role("heading", name=heading)).to_be_visible()
    expect(main).to_contain_text("The 5 most probable of 1,000 classes.")
    expect(main).to_contain_text("evidence for", timeout=LONG)
    picker = main.get_by_role("combobox", name="Class to explain")
    open_options(picker)
    picker.fill("tiger cat")
    page.get_by_role("option", name="tiger cat", exact=True).click()
    expect(main).to_contain_text("evidence for tiger cat", timeout=LONG)
    idle(page)
    no_exception_box(page)
    screenshot(page, "pretrained_inspect")


def test_visualize_ideal_image_side_by_side_and_targeted_attack(page: Page, app_url):
    open_pretrained(page, app_url, "Visualize")
    main = main_area(page)
    main.get_by_role("tab", name="Ideal class image").click()
    tab = shown_tab(page)
    expect(tab.get_by_role("combobox", name="Class")).to_have_value("tabby")
    steps = tab.get_by_test_id("stSlider").filter(has_text="Steps")
    steps.get_by_role("slider").focus()
    page.keyboard.press("Home")  # 20 steps, twice (with and without regularization)
    expect(steps.get_by_test_id("stSliderThumbValue")).to_have_text("20")
    idle(page)
    tab.get_by_role("button", name="Draw the ideal image").click()
    expect(tab).to_contain_text("without regularization: p(tabby)", timeout=LONG)
    expect(tab).to_contain_text("the ideal tabby: the model gives it")
    idle(page)
    no_exception_box(page)
    screenshot(page, "pretrained_visualize_ideal")

    main.get_by_role("tab", name="Adversarial examples").click()
    tab = shown_tab(page)
    expect(tab).to_contain_text("adversarial (±2/255)", timeout=LONG)
    tab.get_by_test_id("stRadio").filter(has_text="Attack").get_by_text("Targeted (iterative)").click()
    expect(tab).to_contain_text("Target ", timeout=LONG)
    expect(tab).to_contain_text("10 steps; the largest change of a pixel is")
    idle(page)
    no_exception_box(page)
    screenshot(page, "pretrained_visualize")
