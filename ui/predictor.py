"""The Predict page's pieces that touch the engine: the model of a ui.subject.Subject (a run or a
pretrained classifier) as a core.predict.Predictor, the top classes of one image,
predictions of uploaded files (cached by their content), their thumbnails, and downloads of an
export. No TensorFlow here: core.predict and core.export do the work; the model comes from
ui.inside's cache, keyed on the subject's model reference.
"""
from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

from core import export, images, predict
from ui import inside
from ui.i18n import t

if TYPE_CHECKING:
    from ui.subject import Subject

THUMBNAIL = 112


def predictor(subject: Subject) -> predict.Predictor:
    """The subject's model (loaded once per server) with its classes, image size and resize mode."""
    return predict.Predictor(inside.model(subject.ref), list(subject.classes), subject.size, subject.resize)


def predict_uploads(subject: Subject, files: list[tuple[str, bytes]]) -> list[dict]:
    """One row per uploaded file (core.predict's columns), cached by the files' content."""
    # The spinner is here, not in the cache's decorator, whose text is fixed when the module loads:
    # it is in the session's language. It shows only if the answer is not cached (after half a second).
    with st.spinner(t("Predicting…")):
        return _predict_uploads(subject.ref, subject.classes, subject.size, subject.resize, tuple(files))


def top_classes(subject: Subject, picked: inside.Picked, k: int = 5) -> list[tuple[int, str, float]]:
    """The k most probable classes of the subject's model on the picked image, decoded at the
    model's own size: [(index, name, probability)], most probable first."""
    probs = inside.probabilities(subject.ref, inside.picked_at(picked, subject.size, subject.resize))
    return [(i, subject.classes[i], float(probs[i])) for i in inside.top_indices(probs, k)]


@st.cache_data(show_spinner=False, max_entries=32)
def _predict_uploads(ref, classes: tuple, size: int, resize: str, files: tuple) -> list[dict]:
    return predict.predict_files(predict.Predictor(inside.model(ref), list(classes), size, resize), files)


@st.cache_data(show_spinner=False, max_entries=256)
def upload_thumbnail(content: bytes) -> np.ndarray | None:
    """A small square view of an uploaded image; None when it cannot be read."""
    try:
        return images.load_image(io.BytesIO(content), THUMBNAIL, budget=images.DECODE_BUDGET)
    except (ValueError, OSError):
        return None


def export_download(result: dict):
    """(label, file name, mime type, data callable) for an export: the model file itself, or a
    zip of the SavedModel folder. The data is read only when the user clicks. The label is in the
    session's language; the file name stays ASCII."""
    folder, path = result["folder"], result["path"]
    run_id = os.path.basename(os.path.normpath(result["run_dir"]))
    if os.path.isdir(path):
        return (t("Download the SavedModel (zip)"), f"{run_id}-savedmodel.zip", "application/zip",
                lambda: export.zip_folder(folder))
    name = f"{run_id}{'-int8' if result.get('int8') else ''}{os.path.splitext(path)[1]}"
    return t("Download {name}", name=name), name, "application/octet-stream", lambda: _read(path)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()
