"""What a session has chosen: the dataset, its split, the seed, the augmentation config, the run
being looked at and the language.

Widgets that set these keep their value in st.session_state under the keys below (with
persist_state="session", so switching pages loses nothing); everything else reads them here.

The choices a person would want back after a refresh, in a second tab or from a shared link are
also kept in the URL (`?dataset=…&run=…&aug=…&lang=…`, see KEPT): `keep_in_url()`, called at the
top of every run, adopts what a URL brings (checked as if the person had typed it) and puts back
what navigation between pages dropped; the setters below write the session and the URL together.
"""
from __future__ import annotations

import math
import os
import re
import secrets
from dataclasses import dataclass, fields
from typing import Any, Callable

import streamlit as st

from core.augment import AugmentConfig
from core.messages import N_, Explained
from core.runs import CONFIG, default_runs_dir
from ui import cache, folders, i18n, presenter

DATASET = "dataset_path"          # the folder chosen on the Dataset page (None: the sample)
VAL_FRACTION = "val_fraction"     # split fractions, used only for flat (class-folder) datasets
TEST_FRACTION = "test_fraction"
SEED = "seed"                     # one seed for the split and for training (TrainConfig.seed)
AUGMENT = "augment_config"        # AugmentConfig fields: what the Augment page shows, what training uses
OWNER = "me"                      # the URL's ?me=<token> and its session key: whose trainings are whose
RUN = "run_looked_at"             # the run id Evaluate, Inspect, Visualize and Predict last showed

DEFAULTS = {VAL_FRACTION: 0.15, TEST_FRACTION: 0.15, SEED: 0}


def runs_dir() -> str:
    return default_runs_dir()


def dataset_path() -> str:
    """The chosen dataset folder; the built-in shapes sample until the user picks another."""
    return st.session_state.get(DATASET) or cache.sample_folder()


def choose_dataset(path: str) -> None:
    _remember(DATASET, path)


def is_sample(path: str) -> bool:
    return path == cache.sample_folder()


def split_settings() -> tuple[float, float, int]:
    """(validation fraction, test fraction, seed) as the Dataset and Train pages use them."""
    get = lambda k: st.session_state.get(k, DEFAULTS[k])  # noqa: E731
    return float(get(VAL_FRACTION)), float(get(TEST_FRACTION)), int(get(SEED))


def current_dataset():
    """The scanned current dataset (cached); raises core.data.DatasetError."""
    val, test, seed = split_settings()
    return cache.scan_dataset(dataset_path(), val, test, seed)


def augment_config() -> AugmentConfig:
    """The one augmentation config: the Augment page edits it, training uses it.

    Until the user changes it, it is the classic Deep Learning with Python settings.
    """
    stored = st.session_state.get(AUGMENT)
    return AugmentConfig.from_dict(stored) if stored is not None else AugmentConfig.classic()


def set_augment_config(config: AugmentConfig) -> None:
    _remember(AUGMENT, config.to_dict())


def augment_chosen() -> bool:
    """The person went to the Augment page and left some augmentation set there: the Train page's
    augmentation switch starts on (until switched there)."""
    stored = st.session_state.get(AUGMENT)
    return stored is not None and any(value for value in stored.values() if not isinstance(value, str))


def run_looked_at() -> str | None:
    """The id of the run last looked at (Evaluate's test results, Inspect, Visualize, Predict)."""
    return st.session_state.get(RUN)


def look_at_run(run_id: str) -> None:
    _remember(RUN, run_id)


def preselect_run(widget_key: str, offered) -> None:
    """Before a run picker is drawn: it shows the run looked at, when it offers that run (after a
    refresh, from a shared link, or chosen on another page). Pass on_change=picked_run."""
    if run_looked_at() in offered:
        st.session_state[widget_key] = run_looked_at()


def picked_run(widget_key: str) -> None:
    """A run picker's on_change: the run it now shows is the one looked at (before the page runs,
    so preselect_run does not put the previous one back)."""
    look_at_run(st.session_state[widget_key])


# ---------------------------------------------------------------- the URL

class BadLink(Explained, ValueError):
    """A value in the URL that cannot be used here (its message: one sentence, shown as a warning)."""


@dataclass(frozen=True)
class Kept:
    """One choice kept in the URL: its query parameter, its session key, and how its session
    value is written into the URL (None: nothing to keep) and read back from it (BadLink if not)."""
    param: str
    key: str
    encode: Callable[[Any], str | None]
    decode: Callable[[str], Any]


def _encode_dataset(path: str | None) -> str | None:
    return None if not path or is_sample(path) else path


def _decode_dataset(asked: str) -> str:
    """The folder as a typed path is checked: inside the data roots (core.data), and there."""
    try:
        real = folders.allowed_folder(asked)
    except folders.FolderNotAllowed:
        real = None
    if real is None or not os.path.isdir(real):
        raise BadLink(N_("The dataset of this link, {folder}, is missing or outside the folders this server "
                         "may read, so the built-in sample is shown instead."), folder=asked)
    return real


def _decode_run(asked: str) -> str:
    """A run id: one name (no path), of a run folder in the runs folder."""
    if asked in ("", ".", "..") or os.path.basename(asked) != asked \
            or not os.path.isfile(os.path.join(runs_dir(), asked, CONFIG)):
        raise BadLink(N_("Run {run} of this link is not in this server's runs folder."), run=asked)
    return asked


AUGMENT_NONE = "none"  # the URL's word for no augmentation at all


def encode_augment(config: dict | None) -> str | None:
    """'rotation:40,zoom:0.2,horizontal_flip:1': the settings that are not zero; None for the
    default (classic) settings, 'none' for none at all."""
    if config is None or AugmentConfig.from_dict(config) == AugmentConfig.classic():
        return None
    default = AugmentConfig().to_dict()
    parts = [f"{name}:{value}" if isinstance(value, str) else f"{name}:{float(value):g}"
             for name, value in AugmentConfig.from_dict(config).to_dict().items()
             if value and value != default[name]]
    return ",".join(parts) or AUGMENT_NONE


def decode_augment(asked: str) -> dict:
    """The inverse of encode_augment; BadLink for an unknown setting or a value that is not a
    number from 0 up (the Augment page keeps each one within its slider)."""
    known = {f.name: f.type for f in fields(AugmentConfig)}
    values = {}
    unreadable = BadLink(N_("The augmentation settings of this link cannot be read, so the classic settings "
                            "are used."))
    for part in ([] if asked == AUGMENT_NONE else asked.split(",")):
        name, _, text = part.partition(":")
        if known.get(name) in (str, "str"):  # a word (the fill mode): checked by AugmentConfig below
            values[name] = text
            continue
        try:
            value = float(text)
        except ValueError:
            value = -1.0
        if name not in known or not math.isfinite(value) or value < 0:
            raise unreadable
        values[name] = bool(value) if known[name] in (bool, "bool") else value
    config = AugmentConfig(**values)
    if config.problem():
        raise unreadable
    return config.to_dict()


_TOKEN = re.compile(r"[A-Za-z0-9_-]{8,64}")


def _decode_owner(asked: str) -> str:
    """An owner token (letters, digits, - and _: it names the owner's uploads folder)."""
    if not _TOKEN.fullmatch(asked):
        raise BadLink(N_("The owner token of this link cannot be used, so this browser gets a new one."))
    return asked


def owner_id() -> str:
    """This browser's owner token (core.jobs: who may stop which training): the URL's ?me= (adopted
    by keep_in_url), else one kept since this session began, else a new random one, put in the URL
    so a refresh or a bookmark keeps it. Anyone with the URL acts as its owner: see docs/RELIABILITY.md."""
    token = st.session_state.get(OWNER)
    if not token:
        token = secrets.token_urlsafe(12)
        _remember(OWNER, token)
    return token


def presenting_changed() -> None:
    """The presenter toggle's on_change: the URL says so at once (else the old ?present would win)."""
    _remember(presenter.KEY, bool(st.session_state.get(presenter.KEY)))


def _decode_language(asked: str) -> str:
    return i18n.language()  # which adopted the URL's language if we have it, and kept the session's if not


KEPT = (
    Kept(i18n.PARAM, i18n.KEY, lambda lang: lang, _decode_language),
    Kept("dataset", DATASET, _encode_dataset, _decode_dataset),
    Kept("run", RUN, lambda run_id: run_id or None, _decode_run),
    Kept("aug", AUGMENT, encode_augment, decode_augment),
    Kept(OWNER, OWNER, lambda token: token or None, _decode_owner),
    Kept(presenter.PARAM, presenter.KEY, lambda on: "1" if on else None, lambda asked: asked == "1"),
)
_BY_KEY = {kept.key: kept for kept in KEPT}


def keep_in_url() -> None:
    """At the top of every run: adopt what the URL asks for (a refresh, a second tab, a shared link),
    each value checked as if typed, with a one-sentence warning when it cannot be used; put back
    what navigation between pages dropped."""
    from ui.widgets import plain  # here: ui.widgets reads this module

    i18n.language()  # the session's language first: the warnings below are written in it
    for kept in KEPT:
        asked, held = st.query_params.get(kept.param), kept.encode(st.session_state.get(kept.key))
        if asked is None or asked == held:
            _show(kept, held)
            continue
        try:
            st.session_state[kept.key] = kept.decode(asked)
        except BadLink as e:
            st.warning(plain(i18n.error_text(e)))
        _show(kept, kept.encode(st.session_state.get(kept.key)))


def _remember(key: str, value) -> None:
    st.session_state[key] = value
    _show(_BY_KEY[key], _BY_KEY[key].encode(value))


def _show(kept: Kept, text: str | None) -> None:
    """Make the URL say text (or nothing) for this choice; untouched when it already does."""
    if st.query_params.get(kept.param) == text:
        return
    if text is None:
        del st.query_params[kept.param]
    else:
        st.query_params[kept.param] = text
