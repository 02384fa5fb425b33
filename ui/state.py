"""What a session has chosen: the dataset, its split, the seed and the augmentation config.

Widgets that set these keep their value in st.session_state under the keys below (with
persist_state="session", so switching pages loses nothing); everything else reads them here.
"""
from __future__ import annotations

import streamlit as st

from core.augment import AugmentConfig
from core.runs import default_runs_dir
from ui import cache

DATASET = "dataset_path"          # the folder chosen on the Dataset page (None: the sample)
VAL_FRACTION = "val_fraction"     # split fractions, used only for flat (class-folder) datasets
TEST_FRACTION = "test_fraction"
SEED = "seed"                     # one seed for the split and for training (TrainConfig.seed)
AUGMENT = "augment_config"        # AugmentConfig fields: what the Augment page shows, what training uses

DEFAULTS = {VAL_FRACTION: 0.15, TEST_FRACTION: 0.15, SEED: 0}


def runs_dir() -> str:
    return default_runs_dir()


def dataset_path() -> str:
    """The chosen dataset folder; the built-in shapes sample until the user picks another."""
    return st.session_state.get(DATASET) or cache.sample_folder()


def choose_dataset(path: str) -> None:
    st.session_state[DATASET] = path


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
    st.session_state[AUGMENT] = config.to_dict()


def augment_chosen() -> bool:
    """The person went to the Augment page and left some augmentation set there: the Train page's
    augmentation switch starts on (until switched there)."""
    stored = st.session_state.get(AUGMENT)
    return stored is not None and any(value for value in stored.values() if not isinstance(value, str))
