"""The dashboard in Japanese, in Chromium: every page opened with ?lang=ja through the main flow
(sample dataset → augmentation preview → a short training → evaluate → predict → inspect → an
ideal-class image → an adversarial example), each without an exception and without a leftover
English sentence; the language survives a refresh and the switch keeps the page. Saves every page
to SCREENSHOTS/ja/ (docs/screenshots/ja/ when TRANSFERLAB_SCREENSHOTS=docs/screenshots).

Labels are found through the same catalog the app uses (`ja("Start training")`), so the test
follows the translation instead of repeating it.
"""
from __future__ import annotations

import functools
import re

import pytest
from babel.messages.pofile import read_po
from playwright.sync_api import Page, expect

from .conftest import ROOT, SCREENSHOTS, VIEWPORT

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]
LONG = 180_000
SHOTS = SCREENSHOTS / "ja"

# What may stay in Latin letters in a Japanese interface: names of things (data, models, methods,
# products), units and file names. Anything else of two English words or more is a leftover.
NAMES = re.compile(
    r"Transfer Lab|Deep Learning with Python|Keras|TensorFlow|ImageNet|MobileNet(V2)?|VGG16|ResNet50|"
    r"EfficientNetB0|Xception|InceptionV3|Grad-CAM\+*|FGSM|ReLU|BatchNorm|RMSprop|Adam|SGD|XLA|CPU|GPU|"
    r"TFLite|SavedModel|CSV|JSON|PNG|JPEG|English|Material|Streamlit|"
    r"[\w.-]+\.(png|jpe?g|csv|json|keras|tflite|zip|md)|[\w-]*\d[\w-]*|[a-z]+_[\w]+|circle|square|triangle|"
    r"shapes|scratch|feature-extraction|fine-tune|mobilenet_v2|docs/\S+|runs/\S+|/\S+")
ENGLISH_RUN = re.compile(r"\b[A-Za-z]{2,}(?:[ ,'’-]+[A-Za-z]{2,})+\b")


# The text of the main area and the sidebar. Streamlit's file uploader draws its own instructions
# ("Drag and drop files here", "Limit 200MB per file") with no way to translate them from the app:
# left out here, and said in README.
VISIBLE_TEXT = """() => {
  const theirs = [...document.querySelectorAll('[data-testid="stFileUploaderDropzoneInstructions"]')];
  theirs.forEach(e => e.style.display = 'none');
  const text = ['stMain', 'stSidebar'].map(id => document.querySelector(`[data-testid="${id}"]`).innerText);
  theirs.forEach(e => e.style.display = '');
  return text.join('\\n');
}"""


@functools.lru_cache(maxsize=1)
def catalog() -> dict[str, str]:
    with open(ROOT / "assets" / "locales" / "ja" / "LC_MESSAGES" / "messages.po", "rb") as f:
        return {m.id: m.string for m in read_po(f, locale="ja") if isinstance(m.id, str) and m.string}


def ja(english: str) -> str:
    """The Japanese of an English sentence of the interface (the test fails if there is none)."""
    return catalog()[english]


def leftover_english(text: str) -> list[str]:
    """Runs of two or more English words left in a page's text, names and identifiers excepted."""
    out = []
    for line in text.splitlines():
        cleaned = NAMES.sub(" ", line)
        out += [m.group(0) for m in ENGLISH_RUN.finditer(cleaned)]
    return out


def test_the_leftover_detector_tells_a_sentence_from_names():
    assert leftover_english("Start the training now") == ["Start the training now"]
    assert leftover_english("MobileNetV2 の特徴抽出、conv2d_1、cat.1234.jpg、circle") == []


def main_area(page: Page):
    return page.get_by_test_id("stMain")


def idle(page: Page, timeout: float = LONG) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=timeout)


def check_page(page: Page, name: str) -> None:
    """No exception box, no English sentence left, and a screenshot of the whole page."""
    idle(page)
    expect(page.get_by_test_id("stException")).to_have_count(0)
    left = leftover_english(page.evaluate(VISIBLE_TEXT))
    SHOTS.mkdir(parents=True, exist_ok=True)
    height = page.evaluate('() => document.querySelector(\'[data-testid="stMain"]\').scrollHeight')
    page.set_viewport_size({"width": VIEWPORT["width"], "height": min(max(height, VIEWPORT["height"]), 4000)})
    page.mouse.move(0, 799)
    page.wait_for_timeout(800)
    page.screenshot(path=str(SHOTS / f"{name}.png"))
    page.set_viewport_size(VIEWPORT)
    assert not left, f"{name}: English left on the page: {left[:10]}"


def go_to(page: Page, english_title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=ja(english_title)).click()
    expect(page.get_by_role("heading", name=ja(english_title), level=1)).to_be_visible()
    assert "lang=ja" in page.url


@pytest.fixture
def page_ja(browser, app_url):
    context = browser.new_context(viewport=VIEWPORT, locale="ja-JP")
    context.set_default_timeout(60_000)
    p = context.new_page()
    yield p
    context.close()


def test_every_page_in_japanese_through_the_main_flow(page_ja: Page, app_url):
    page = page_ja
    page.goto(f"{app_url}/?lang=ja")
    expect(page.get_by_role("heading", name=ja("Dataset"), level=1)).to_be_visible()
    check_page(page, "dataset")

    go_to(page, "Augment")
    images = main_area(page).locator('[data-testid="stImage"] img')
    expect(images).to_have_count(12)
    rotation = main_area(page).get_by_test_id("stSlider").filter(has_text=ja("Rotation"))
    rotation.get_by_role("slider").focus()
    page.keyboard.press("ArrowRight")
    check_page(page, "augment")

    go_to(page, "Train")
    main = main_area(page)
    main.get_by_test_id("stRadio").get_by_text(ja("From scratch"), exact=True).click()
    idle(page)
    size = main.get_by_label(ja("Image size (px)"), exact=True)
    size.fill("48")  # the scratch convnet's smallest size: a training of seconds
    size.press("Enter")
    idle(page)
    epochs = main.get_by_label(ja("Epochs"), exact=True)
    epochs.fill("2")
    epochs.press("Enter")
    idle(page)
    main.get_by_role("button", name=ja("Start training")).click()
    expect(main.get_by_test_id("stMetric").filter(has_text=ja("Best validation accuracy"))).to_be_visible(
        timeout=LONG)
    check_page(page, "train")

    # A refresh keeps the language and the page.
    page.reload()
    expect(page.get_by_role("heading", name=ja("Train"), level=1)).to_be_visible()
    assert "lang=ja" in page.url

    for title in ("Evaluate", "Predict", "Inspect"):
        go_to(page, title)
        check_page(page, title.lower())

    go_to(page, "Visualize")
    main = main_area(page)
    main.get_by_role("tab", name=ja("Ideal class image")).click()
    tab = main.locator('[role="tabpanel"]').filter(visible=True)
    tab.get_by_role("button", name=ja("Draw the ideal image")).click()
    expect(tab.get_by_test_id("stImage").first).to_be_visible(timeout=LONG)
    check_page(page, "visualize-ideal")
    main.get_by_role("tab", name=ja("Adversarial examples")).click()
    idle(page)
    check_page(page, "visualize-adversarial")

    # The switch keeps the page: English, then back to Japanese.
    page.get_by_test_id("stSidebar").get_by_text("English", exact=True).click()
    expect(page.get_by_role("heading", name="Visualize", level=1)).to_be_visible()
    assert "lang=en" in page.url
    page.get_by_test_id("stSidebar").get_by_text("日本語", exact=True).click()
    expect(page.get_by_role("heading", name=ja("Visualize"), level=1)).to_be_visible()
