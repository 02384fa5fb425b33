"""Shared fixtures: tiny generated datasets, the runs folder, the sample folder and the tiny models
and run trained once per session, offline weights (KERAS_HOME)."""
from __future__ import annotations

import io
import os
import sys

import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
sys.path.insert(0, ROOT)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if os.path.isdir(os.path.join(SHARED, "weights")):
    os.environ.setdefault("KERAS_HOME", os.path.join(SHARED, "weights"))
CATS_AND_DOGS = os.path.join(SHARED, "datasets", "cats_and_dogs_small")


def save_image(path, size=(24, 24), color=(200, 30, 30), mode="RGB", fmt=None, **kwargs):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.new(mode, size, color if mode in ("RGB", "RGBA", "CMYK") else 128)
    img.save(path, format=fmt, **kwargs)
    return path


@pytest.fixture
def shapes(tmp_path):
    """A flat-layout dataset of 3 classes x 12 generated 32-px shape images."""
    from core.sample import make_shapes

    return make_shapes(str(tmp_path / "shapes"), per_class=12, size=32)


@pytest.fixture
def split_shapes(tmp_path):
    """train/validation/test layout of 2 generated classes."""
    from core.sample import make_shapes

    root = tmp_path / "split"
    for split, n, seed in (("train", 16, 0), ("validation", 6, 1), ("test", 6, 2)):
        make_shapes(str(root / split), per_class=n, size=32, seed=seed, classes=("circle", "square"))
    return str(root)


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    d = tmp_path / "runs"
    monkeypatch.setenv("TRANSFERLAB_RUNS_DIR", str(d))
    return str(d)


def jpeg_bytes(size=(40, 30), color=(10, 200, 10), **kwargs) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "JPEG", **kwargs)
    return buf.getvalue()


def random_rgb(size=32, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="session")
def samples_dir(tmp_path_factory) -> str:
    """One samples folder for the whole session: the built-in sample is generated once."""
    return str(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="session")
def tint_model():
    """The toy model of the visualize and adversarial tests (tiny_models.tint_model), trained once
    per session: no test changes its weights."""
    from tiny_models import tint_model as train_tint_model

    return train_tint_model()


@pytest.fixture
def few_steps(monkeypatch):
    """Optimizations and attacks capped at 40 steps (TRANSFERLAB_MAX_STEPS), so each runs in seconds."""
    from core.visualize import MAX_STEPS_ENV

    monkeypatch.setenv(MAX_STEPS_ENV, "40")


@pytest.fixture(scope="session")
def tiny_run_trained(tmp_path_factory) -> dict:
    """tiny_runs.make_tiny_run, trained once per session; tests use tiny_run, a copy of their module's own."""
    from tiny_runs import make_tiny_run

    return make_tiny_run(str(tmp_path_factory.mktemp("tiny_run")))


@pytest.fixture(scope="module")
def tiny_run(tiny_run_trained, tmp_path_factory) -> dict:
    """The tiny trained run (tiny_runs.make_tiny_run), its run folder copied for this module, which
    may write into it (predictions, exports); its dataset and test images are shared, read only."""
    import shutil

    runs = tmp_path_factory.mktemp("runs")
    run_dir = shutil.copytree(tiny_run_trained["run_dir"], runs / os.path.basename(tiny_run_trained["run_dir"]))
    return {**tiny_run_trained, "run_dir": str(run_dir)}
