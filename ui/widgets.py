"""Widget groups used on more than one page."""
from __future__ import annotations

import os
import re

import streamlit as st

from core.augment import FILL_MODE_LABELS
from core.images import display_name
from ui import glossary, presenter, state
from ui.i18n import N_, fmt_int, fmt_num, fmt_pct, t

# The characters that start Markdown anywhere in a line (CommonMark, GitHub's tables, strikethrough
# and autolinks "http://", Streamlit's :directives[], :material/icons: and :emoji:, $math$, HTML;
# "_" only at the edge of a word, where it can start emphasis), and the ones that start a block at
# the beginning of a text (a list, a quote, a heading, an ordered list "1."). A link or an image
# needs "[": escaped. What is left ("a.png: 40%") reads the same escaped or not.
_INLINE_MARKUP = re.compile(r"[\\`*\[\]<>#|~$&]|:(?=[A-Za-z/])|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z])")
_BLOCK_START = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))")
_WWW_LINK = re.compile(r"(?i)\b(www)\.")  # GitHub links "www.x.org" even with no scheme

# Material icons: the browser needs no emoji font to show them.
STATE_ICONS = {"queued": ":material/hourglass_top:", "running": ":material/directions_run:",
               "stopping": ":material/pan_tool:", "finished": ":material/check_circle:",
               "stopped": ":material/stop_circle:", "failed": ":material/error:",
               "interrupted": ":material/warning:", "damaged": ":material/broken_image:",
               "cancelled": ":material/cancel:", "not started": ":material/schedule:"}
# The words for them, translated where shown (state_label).
STATE_WORDS = {"queued": N_("queued"), "running": N_("running"), "stopping": N_("stopping"),
               "finished": N_("finished"), "stopped": N_("stopped"), "failed": N_("failed"),
               "interrupted": N_("interrupted"), "damaged": N_("damaged"), "cancelled": N_("cancelled"),
               "not started": N_("not started")}
# One word per augmentation setting with a single value (describe_augment).
_AUGMENT_PARTS = {"shear": N_("shear {value}"), "zoom": N_("zoom {value}"), "brightness": N_("brightness {value}"),
                  "contrast": N_("contrast {value}"), "hue": N_("hue {value}"),
                  "channel_shift": N_("channel shift {value}")}


def plain(text) -> str:
    """Text from the user's files (a file, folder, class or path name, or a message quoting one)
    as Markdown that shows it literally: no link, image, emphasis or icon in it is interpreted, and
    bytes that are not UTF-8 show as \ufffd. Use it wherever such text goes into st.markdown,
    st.caption, st.error and the like, or into an image caption."""
    escaped = _INLINE_MARKUP.sub(lambda m: "\\" + m[0], display_name(str(text)).replace("\n", " "))
    escaped = _WWW_LINK.sub(r"\1\\.", escaped)
    return _BLOCK_START.sub(lambda m: m[1] + (m[2] + "\\" if m[2].isdigit() else "\\" + m[2]), escaped)


def page_intro(title: str, text: str, page: str | None = None) -> None:
    """The page title and two or three sentences on what the user sees and why it matters (both
    already translated: page_intro(t("Dataset"), t("Everything starts..."))."""
    st.title(title)
    if presenter.on():  # in front of a room the result comes first; the words stay one click away
        with st.expander(t("What this page shows")):
            st.markdown(text)
    else:
        st.markdown(text)
    if page:
        glossary.words_on(page)


def seed_input(help_text: str) -> int:
    """The one seed of the session: it picks the split of a flat folder and seeds training."""
    return st.number_input(t("Seed"), min_value=0, max_value=2 ** 31 - 1, step=1, key=state.SEED,
                           value=state.DEFAULTS[state.SEED], help=help_text, persist_state="session")


def image_grid(images: list, captions: list[str] | None = None, columns: int = 6) -> None:
    """Images in rows of `columns`, each with an optional caption (plain text, shown as it is)."""
    captions = captions or [None] * len(images)
    columns = presenter.columns(columns)
    for start in range(0, len(images), columns):
        cols = st.columns(columns)
        for col, image, caption in zip(cols, images[start:start + columns], captions[start:start + columns]):
            with col:
                if image is None:
                    st.caption(t("(cannot be read) {name}", name=plain(caption or "")))
                else:
                    st.image(image, caption=plain(caption) if caption else None, width="stretch")


def format_seconds(seconds: float | None) -> str:
    """'1 min 15 s', '9 s'; '—' when unknown."""
    if seconds is None:
        return "—"
    seconds = int(round(seconds))
    if seconds < 60:
        return t("{seconds} s", seconds=seconds)
    minutes, seconds = divmod(seconds, 60)
    return t("{minutes} min {seconds} s", minutes=fmt_int(minutes), seconds=str(seconds).zfill(2))


def comma_list(items) -> str:
    """Items one after the other as the language lists them: 'a, b, c' / 'a、b、c'."""
    return t(", ").join(items)


def state_label(state: str) -> str:
    """A job's or run's state with its icon, in the session's language: ':material/check_circle: finished'."""
    word = t(STATE_WORDS.get(state, state))
    return f"{STATE_ICONS.get(state, '')} {word}"


def job_headline(snap: dict) -> str:
    """'🏃 running · head · 45% · about 12 s left' for a job snapshot."""
    parts = [state_label(snap["state"])]
    if snap["state"] in ("running", "stopping") and snap["phase"]:
        parts.append(t(snap["phase"]))
        parts.append(fmt_pct(snap["phase_progress"], 0))
        if snap["eta_seconds"] is not None:
            parts.append(t("about {time} left", time=format_seconds(snap["eta_seconds"])))
    return " · ".join(parts)


def run_name(run_dir: str | None) -> str:
    return os.path.basename(os.path.normpath(run_dir)) if run_dir else t("(run folder not created yet)")


def describe_augment(config) -> str:
    """A one-line summary of an AugmentConfig, e.g. 'rotation ±40°, shift 0.2/0.2, horizontal flip'."""
    c = config
    parts = []
    if c.rotation:
        parts.append(t("rotation ±{degrees}°", degrees=fmt_num(c.rotation)))
    if c.width_shift or c.height_shift:
        parts.append(t("shift {width}/{height}", width=fmt_num(c.width_shift), height=fmt_num(c.height_shift)))
    for name, words in _AUGMENT_PARTS.items():
        if getattr(c, name):
            parts.append(t(words, value=fmt_num(getattr(c, name))))
    if c.horizontal_flip:
        parts.append(t("horizontal flip"))
    if c.vertical_flip:
        parts.append(t("vertical flip"))
    if parts and getattr(c, "fill_mode", "nearest") != "nearest":  # the fill matters only when pixels move
        parts.append(t("fill: {mode}", mode=t(FILL_MODE_LABELS.get(c.fill_mode, c.fill_mode))))
    return comma_list(parts) or t("no transformation (identity)")
