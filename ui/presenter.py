"""Presenter mode: the dashboard for a projector in front of a room (?present=1 in the URL).

Larger type everywhere (Streamlit sizes in rem, so one root font size scales text, widgets and
spacing), larger chart labels, fewer and so larger images per row, and each page's explanation
folded under its title so the result comes first. Kept in the URL like the language: a refresh or
a shared link opens in the same mode.
"""
from __future__ import annotations

import streamlit as st

from ui.i18n import t

PARAM = "present"
KEY = "presenter_mode"
ROOT_FONT_PX = 21  # Streamlit's default is 16 px: ~1.3x, readable from the back of a classroom at 1280x720
CHART_FONT_PX = 17

STYLE = f"""<style>
html {{ font-size: {ROOT_FONT_PX}px; }}
[data-testid="stMain"] .js-plotly-plot .main-svg text {{ font-size: {CHART_FONT_PX}px !important; }}
[data-testid="stMain"] .block-container {{ padding-top: 2.5rem; max-width: 100%; }}
</style>"""


def on() -> bool:
    """Whether this session presents: the URL says so first (a refresh), then the sidebar toggle."""
    if KEY not in st.session_state:
        st.session_state[KEY] = st.query_params.get(PARAM) == "1"
    return bool(st.session_state[KEY])


def keep_in_url() -> None:
    """?present=1 while presenting, nothing otherwise (navigation drops query parameters)."""
    if on():
        if st.query_params.get(PARAM) != "1":
            st.query_params[PARAM] = "1"
    elif PARAM in st.query_params:
        del st.query_params[PARAM]


def apply() -> None:
    """The presenter's style sheet, on every page while presenting."""
    keep_in_url()
    if on():
        st.html(STYLE)


def switch() -> None:
    """The sidebar toggle."""
    st.toggle(t("Presenter mode"), key=KEY, help=t(
        "Larger type and charts for a projector, fewer and larger images per row, and each page's "
        "explanation folded under its title. The address keeps it: share or refresh it."))


def columns(n: int) -> int:
    """How many images per row: fewer, so larger, while presenting."""
    return max(2, (2 * n) // 3) if on() else n
