"""The interface in English and Japanese: every sentence in the catalog, translated, with the
same placeholders, and none shown without going through it."""
from __future__ import annotations

import ast
import os
import re

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from conftest import ROOT
from ui import i18n

KEYWORDS = {"t": None, "nt": (1, 2), "N_": None}
UI_FILES = ["app.py"] + [os.path.join(d, f) for d in ("app_pages", "ui")
                         for f in sorted(os.listdir(os.path.join(ROOT, d))) if f.endswith(".py")]


def code_messages() -> dict[str, tuple[str, ...]]:
    """msgid -> (msgid, plural?) for every t()/nt()/N_() in the code, as scripts/i18n.sh extracts them."""
    out = {}
    with open(os.path.join(ROOT, "babel.cfg"), encoding="utf-8") as f:
        from babel.messages.frontend import parse_mapping_cfg
        method_map, options_map = parse_mapping_cfg(f)
    for _file, _line, message, _comments, _context in extract_from_dir(
            ROOT, method_map, options_map, keywords=KEYWORDS):
        key = message if isinstance(message, str) else message[0]
        out[key] = (message,) if isinstance(message, str) else tuple(message)
    return out


def japanese_catalog():
    with open(os.path.join(i18n.LOCALES, "ja", "LC_MESSAGES", "messages.po"), "rb") as f:
        return read_po(f, locale="ja")


def test_every_sentence_in_the_code_has_a_checked_japanese_translation():
    catalog = japanese_catalog()
    missing = []
    for msgid in code_messages():
        entry = catalog.get(msgid)
        text = entry.string if entry is not None else ""
        texts = text if isinstance(text, tuple) else (text,)
        if entry is None or entry.fuzzy or not all(texts):
            missing.append(msgid)
    assert not missing, f"{len(missing)} sentences without a Japanese translation (run scripts/i18n.sh " \
                        f"and translate them): {missing[:10]}"


def test_placeholders_are_the_same_in_both_languages():
    wrong = []
    for message in japanese_catalog():
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        wanted = set().union(*(i18n.placeholders(i) for i in ids))
        for s in strings:
            if i18n.placeholders(s) != wanted:
                wrong.append((message.id, s))
    assert not wrong, wrong[:10]


def test_japanese_uses_the_glossary_terms():
    """The references' terms, not ad-hoc ones (../shared/docs/GLOSSARY-ja.md)."""
    # accuracy is 正解率, never 精度 (混合精度, mixed precision, is another thing); 微調整 only beside
    # ファインチューニング, as the glossary allows once in an explanation
    avoid = {r"(?<!混合)精度": "正解率", "オーグメンテーション": "データ拡張", r"^(?!.*ファインチューニング).*微調整": "ファインチューニング",
             "ロス": "損失", "検証セット": "検証データ", "訓練セット": "訓練データ"}
    found = [(m.id, avoid[bad]) for m in japanese_catalog() if m.string
             for bad in avoid if re.search(bad, str(m.string))]
    assert not found, found[:10]


# ---------------------------------------------------------------- nothing bypasses the catalog

# Streamlit calls whose text arguments a user reads.
SHOWN = {"title", "header", "subheader", "markdown", "caption", "write", "text", "info", "warning",
         "error", "success", "toast", "button", "download_button", "form_submit_button", "link_button",
         "page_link", "checkbox", "toggle", "radio", "selectbox", "multiselect", "select_slider", "slider",
         "number_input", "text_input", "text_area", "file_uploader", "segmented_control", "pills",
         "expander", "tabs", "metric", "progress", "spinner", "status", "popover", "dialog", "Page",
         "image", "column_config", "TextColumn", "NumberColumn", "ProgressColumn", "CheckboxColumn"}
TEXT_KEYWORDS = {"label", "help", "placeholder", "caption", "body", "text", "title", "captions", "value"}
# Plotly figures: titles, axis titles, legend names and hover text.
PLOTTED = {"add_bar", "add_trace", "Scatter", "Bar", "Heatmap", "update_layout", "update_xaxes", "update_yaxes",
           "add_annotation", "dict"}
PLOT_KEYWORDS = {"title", "title_text", "xaxis_title", "yaxis_title", "legend_title_text", "name", "hovertemplate",
                 "text"}
# Text that needs no translation: icons, units, punctuation, numbers and format patterns.
NEUTRAL = re.compile(r"^(\s|:material/[a-z_]+:|[-–—·•×%°/|()\[\]:.,+±*#_`→←=ε0-9]|px|%[-.0-9]*[dfs]|%?\{[^}]*\}"
                     r"|<extra></extra>)*$")


def _literal_text(node) -> str | None:
    """The text of a string literal or f-string, or None for anything else."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def untranslated(source: str) -> list[tuple[int, str]]:
    """(line, text) of every literal shown by a Streamlit call without going through t()/nt()."""
    out = []
    for call in ast.walk(ast.parse(source)):
        if not isinstance(call, ast.Call):
            continue
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        if name in SHOWN:
            candidates = list(call.args) + [k.value for k in call.keywords if k.arg in TEXT_KEYWORDS]
        elif name in PLOTTED:
            candidates = [k.value for k in call.keywords if k.arg in PLOT_KEYWORDS]
        else:
            continue
        for node in candidates:
            for item in (node.elts if isinstance(node, (ast.List, ast.Tuple)) else [node]):
                text = _literal_text(item)
                if text is not None and not NEUTRAL.match(text):
                    out.append((item.lineno, text))
    return out


def test_the_scan_finds_a_bare_sentence_and_accepts_a_translated_one():
    found = untranslated('st.button("Start")\nst.caption(f"{n} images")\nst.button(t("Start"))\n'
                         'st.caption(":material/folder:")\nst.tabs(["One", t("Two")])\n'
                         'fig.update_layout(xaxis_title="epoch", yaxis_title=t("loss"), height=3)\n'
                         'go.Scatter(hovertemplate="%{x}: %{y}<extra></extra>", name="train")\n')
    assert [line for line, _ in found] == [1, 2, 5, 6, 7]


@pytest.mark.parametrize("path", UI_FILES)
def test_no_sentence_on_screen_bypasses_the_catalog(path):
    with open(os.path.join(ROOT, path), encoding="utf-8") as f:
        found = untranslated(f.read())
    assert not found, f"{path}: shown without t(): {found[:8]}"


# ---------------------------------------------------------------- the language of a session

def test_browser_locales_map_to_our_languages():
    assert i18n.from_locale("ja-JP") == "ja"
    assert i18n.from_locale("en_GB") == "en"
    assert i18n.from_locale("fr-FR") is None
    assert i18n.from_locale(None) is None


def test_placeholders_are_named():
    assert i18n.placeholders("{n} images in {classes} classes") == {"n", "classes"}
    assert i18n.placeholders("no placeholder") == set()


# ---------------------------------------------------------------- the pages in Japanese

PAGES = [("dataset", "Dataset"), ("augment", "Augment"), ("train", "Train"), ("evaluate", "Evaluate"),
         ("predict", "Predict"), ("inspect", "Inspect"), ("visualize", "Visualize")]


@pytest.mark.timeout(300)
def test_every_page_opens_in_japanese_and_the_language_stays_in_the_url(tmp_path, monkeypatch):
    """?lang=ja: each page's title and the navigation in Japanese, no exception, the parameter kept
    while moving between pages (AppTest has no browser: the interactions are in tests/e2e)."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    import core.jobs
    from apptest_helpers import APP, assert_clean

    monkeypatch.setenv("TRANSFERLAB_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("TRANSFERLAB_SAMPLES_DIR", str(tmp_path / "samples"))
    monkeypatch.setattr(core.jobs, "REGISTRY", core.jobs.JobRegistry())
    st.cache_data.clear()
    # AppTest reads a widget's shown options by calling its format_func in the test's own thread,
    # where there is no session and so no ?lang: there, the language is the one under test.
    from streamlit.runtime.scriptrunner import get_script_run_ctx
    in_app = i18n.language
    monkeypatch.setattr(i18n, "language", lambda: in_app() if get_script_run_ctx() else "ja")
    catalog = {m.id: m.string for m in japanese_catalog() if isinstance(m.id, str)}
    at = AppTest.from_file(APP, default_timeout=180)
    at.query_params["lang"] = "ja"
    at.run()
    for page, title in PAGES:
        at.switch_page(f"app_pages/{page}.py").run()
        assert_clean(at)
        assert at.title[0].value == catalog[title], page
        assert at.query_params.get("lang") in ("ja", ["ja"]), page
