"""core.sample: the generated dataset the dashboard opens with."""
from __future__ import annotations

import hashlib
import os

import pytest

from core import data, sample


def _digest(root):
    h = hashlib.sha256()
    for dirpath, _, files in sorted(os.walk(root)):
        for f in sorted(files):
            h.update(f.encode())
            h.update(open(os.path.join(dirpath, f), "rb").read())
    return h.hexdigest()


def test_shapes_are_deterministic_and_a_valid_dataset(tmp_path):
    a = sample.make_shapes(str(tmp_path / "a"), per_class=5, size=40)
    b = sample.make_shapes(str(tmp_path / "b"), per_class=5, size=40)
    assert _digest(a) == _digest(b)
    ds = data.scan(a)
    assert ds.classes == list(sample.SHAPES) and not ds.skipped
    assert all(size == (40, 40) for size in ds.sizes.values())


def test_ensure_shapes_generates_once(tmp_path):
    root = sample.ensure_shapes(str(tmp_path))
    stamp = os.path.getmtime(os.path.join(root, "circle", "circle_000.png"))
    assert sample.ensure_shapes(str(tmp_path)) == root
    assert os.path.getmtime(os.path.join(root, "circle", "circle_000.png")) == stamp
    assert len(data.scan(root).splits["train"]) > 100


def test_the_real_photo_sample_fails_offline_with_a_clear_message(monkeypatch):
    import keras

    def offline(*a, **k):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    with pytest.raises(RuntimeError, match="offline"):
        sample.download_cats_and_dogs()
