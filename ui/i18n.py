"""The interface's language: English or Japanese, from gettext message catalogs.

Every sentence a user reads is written in English in the code, wrapped in `t()`:

    st.button(t("Start training"))
    st.caption(t("{n} images in {classes} classes", n=fmt_int(n), classes=len(ds.classes)))

`t` looks the English sentence up in the catalog of the session's language
(`assets/locales/<lang>/LC_MESSAGES/messages.po`, read with Babel: the standard gettext format
translators' tools open) and fills the named placeholders after translating, so a translation
may reorder them. English is the source language and needs no catalog.

The language comes from the URL (`?lang=ja`, kept there by ui.state.keep_in_url with the other
choices), so a refresh keeps it and a shared link opens in it; without one, from the browser's
language; English otherwise. `scripts/i18n.sh` extracts the
sentences from the code into the template and updates the catalogs (see README, "Languages").
"""
from __future__ import annotations

import functools
import io
import os
from string import Formatter

import streamlit as st
from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations

from core.messages import Message, message_of

LANGUAGES = {"en": "English", "ja": "日本語"}  # code -> the language's name in itself
SOURCE = "en"
PARAM = "lang"   # the URL's query parameter
KEY = "language"  # where the session keeps it between pages (navigation drops query parameters)
SWITCH_LABEL = "Language / 言語"  # in both languages on purpose: whoever cannot read one reads the other
LOCALES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "locales")
DOMAIN = "messages"


def N_(msgid: str) -> str:
    """Marks a sentence for the catalog where it is defined (a constant); `t()` translates it later."""
    return msgid


@functools.lru_cache(maxsize=None)
def translations(lang: str) -> NullTranslations:
    """The compiled catalog of a language (the source language translates to itself)."""
    path = os.path.join(LOCALES, lang, "LC_MESSAGES", f"{DOMAIN}.po")
    if lang == SOURCE or not os.path.exists(path):
        return NullTranslations()
    with open(path, "rb") as f:
        catalog = read_po(f, locale=lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)  # fuzzy entries are left out: an unchecked translation falls back to English
    buf.seek(0)
    return Translations(fp=buf, domain=DOMAIN)


def placeholders(text: str) -> set[str]:
    """The named placeholders of a message: {'n', 'classes'} for '{n} images in {classes} classes'."""
    return {name for _, name, _, _ in Formatter().parse(text) if name}


# ---------------------------------------------------------------- the session's language

def from_locale(locale: str | None) -> str | None:
    """'ja' for the browser locale 'ja-JP'; None for a language we do not have."""
    code = (locale or "").replace("_", "-").split("-")[0].lower()
    return code if code in LANGUAGES else None


def language() -> str:
    """The session's language: the URL's, else the one chosen earlier, else the browser's, else English."""
    asked = st.query_params.get(PARAM)
    if asked in LANGUAGES:
        st.session_state[KEY] = asked
    elif st.session_state.get(KEY) not in LANGUAGES:
        st.session_state[KEY] = from_locale(_browser_locale()) or SOURCE
    return st.session_state[KEY]


def _browser_locale() -> str | None:
    try:
        return st.context.locale
    except Exception:  # noqa: BLE001  no browser (a test harness): the default language
        return None


def language_switch() -> None:
    """English / 日本語 in the sidebar. Changing it keeps the page and everything chosen."""
    current = language()
    chosen = st.segmented_control(SWITCH_LABEL, list(LANGUAGES), default=current,
                                  format_func=LANGUAGES.get, key="language_switch",
                                  label_visibility="collapsed")
    if chosen and chosen != current:
        st.session_state[KEY] = chosen
        st.query_params[PARAM] = chosen
        st.rerun()


# ---------------------------------------------------------------- translating and formatting

def t(msgid: str, **params) -> str:
    """The sentence in the session's language, its {placeholders} filled in."""
    text = translations(language()).gettext(msgid)
    return text.format(**params) if params else text


def nt(singular: str, plural: str, n: int, **params) -> str:
    """The sentence for a count: '1 epoch' / '{n} epochs'; n is also a placeholder."""
    text = translations(language()).ngettext(singular, plural, n)
    return text.format(n=fmt_int(n), **params)


def _locale() -> Locale:
    return Locale.parse(language())


def fmt_int(n) -> str:
    """1,234 (as the locale writes it)."""
    return format_decimal(int(n), locale=_locale())


def fmt_num(x, digits: int = 2) -> str:
    """A number with at most `digits` decimals."""
    return format_decimal(x, format=f"#,##0.{'#' * digits}" if digits else "#,##0", locale=_locale())


def fmt_pct(x, digits: int = 1) -> str:
    """A fraction as a percentage with a fixed number of decimals: 0.9781 -> '97.8%'."""
    return format_percent(x, format=f"#,##0.{'0' * digits}%" if digits else "#,##0%", locale=_locale())


def tm(message) -> str:
    """A sentence from the engine (core.messages.Message, or a plain English sentence) in the
    session's language; a sentence the catalog does not know is shown as it is."""
    if isinstance(message, Message):
        return t(message.msgid, **{k: tm(v) if isinstance(v, Message) else v for k, v in message.params.items()})
    return t(str(message))


def error_text(e: BaseException) -> str:
    """What to show for an error the engine explained (see core.messages.Explained)."""
    return tm(message_of(e))
