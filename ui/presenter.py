"""Presenter mode: the dashboard for a projector in front of a room (?present=1 in the URL).

Larger type everywhere (Streamlit sizes in rem, so one root font size scales text, widgets and
spacing), larger chart labels, fewer and so larger images per row, and each page's explanation
folded under its title so the result comes first. Kept in the URL like the language: a refresh or
a shared link opens in the same mode (ui.state keeps ?present=1 with the other choices).
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
[data-testid="stMainBlockContainer"] {{ padding-top: 2.5rem; max-width: 100%; }}
</style>"""


def on() -> bool:
    """Whether this session presents (the sidebar toggle; ui.state.keep_in_url adopts ?present=1)."""
    return bool(st.session_state.get(KEY))


def apply() -> None:
    """The presenter's style sheet, on every page while presenting."""
    if on():
        st.html(STYLE)


def switch(on_change) -> None:
    """The sidebar toggle; on_change puts the new state in the URL (ui.state.presenting_changed)."""
    st.toggle(t("Presenter mode"), key=KEY, on_change=on_change, help=t(
        "Larger type and charts for a projector, fewer and larger images per row, and each page's "
        "explanation folded under its title. The address keeps it: share or refresh it."))


def columns(n: int) -> int:
    """How many images per row: fewer, so larger, while presenting."""
    return max(2, (2 * n) // 3) if on() else n
