"""Everything slow that the pages load, cached by Streamlit.

st.cache_data for values (scans, thumbnails, previews), st.cache_resource for shared objects
(the layer-table model, the device). The engine functions are called, never reimplemented.
"""
from __future__ import annotations

import os
import threading

import numpy as np
import streamlit as st

from core import data, images, sample
from ui.i18n import N_, fmt_int, t


class Translated(str):
    """A spinner text for a cache decorator: the decorator's argument is fixed when the module is
    imported, the language is the session's; Streamlit reads str() of it when it shows the spinner
    (in the session's script thread), and gets the sentence in that session's language."""

    def __str__(self) -> str:
        return t(str.__str__(self))


@st.cache_resource(show_spinner=Translated(N_("Generating the sample dataset…")))
def sample_folder() -> str:
    """The built-in shapes sample (generated once, offline)."""
    return sample.ensure_shapes()


@st.cache_resource(show_spinner=Translated(N_("Starting TensorFlow…")))
def training_device():
    """Where training runs, as a core.messages.Message (shown with i18n.tm)."""
    from core import devices

    devices.start_tensorflow()
    return devices.device_message(devices.gpu_details())


@st.cache_data(show_spinner=Translated(N_("Checking every image in the folder…")), max_entries=16)
def scan_dataset(path: str, val_fraction: float, test_fraction: float, seed: int) -> data.Dataset:
    """core.data.scan within the data roots, keyed on the folder, the split fractions and the seed,
    with a progress bar while the files are checked (a 50,000-file folder takes a while)."""
    bar = st.empty()  # made here, not passed in: a cached function replays the elements it makes
    try:
        return data.scan(path, val_fraction, test_fraction, seed, within=data.data_roots(),
                         progress=lambda done, total: bar.progress(done / total, text=t(
                             "Checking images: {done} of {total}", done=fmt_int(done), total=fmt_int(total))))
    finally:
        bar.empty()


def thumbnail(path: str, size: int = 112) -> np.ndarray | None:
    """One image as training sees it (square, RGB) at a small size; None if it cannot be read."""
    return _thumbnail(os.fsencode(path), size)  # bytes: the cache cannot hash a name that is not UTF-8


@st.cache_data(show_spinner=False, max_entries=2048)
def _thumbnail(path: bytes, size: int) -> np.ndarray | None:
    try:
        return images.load_image(os.fsdecode(path), size)
    except (ValueError, OSError):
        return None


@st.cache_data(show_spinner=False, max_entries=64)
def augment_preview(image: np.ndarray, config: dict, n: int, seed: int) -> list[np.ndarray]:
    """n variants of image through the training augmentation layers."""
    from core.augment import AugmentConfig, preview

    return preview(image, AugmentConfig.from_dict(config), n, seed)


@st.cache_resource(show_spinner=Translated(N_("Building the base to list its layers…")), max_entries=4)
def _layer_model(base: str, num_classes: int):
    from core.backbones import BACKBONES
    from core.models import build_transfer

    size = max(96, BACKBONES[base].min_size)  # the layer list does not depend on the size
    return build_transfer(base, size, num_classes, weights=None), threading.Lock()


def base_layers(base: str, num_classes: int, unfreeze: int) -> tuple[list[dict], int]:
    """(layer table rows, top first; trainable parameter count) for unfreezing the top layers."""
    from core.models import layer_table, unfreeze_top

    model, lock = _layer_model(base, num_classes)
    with lock:  # the model is shared by every session; unfreeze_top changes it
        return layer_table(model, unfreeze), unfreeze_top(model, unfreeze)
