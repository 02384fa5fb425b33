"""Sample datasets: a generated one that works offline, and the real cats-vs-dogs photos.

The generated "shapes" dataset is drawn by our own code, deterministically from a seed: a few
classes of shapes with varied colour, size, position, rotation, background and noise. It is
what the dashboard opens with, so the app is usable with no download.
"""
from __future__ import annotations

import math
import os
import random

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle")
SAMPLE_VERSION = 1
CATS_AND_DOGS_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"


def default_samples_dir() -> str:
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.environ.get("TRANSFERLAB_SAMPLES_DIR", os.path.join(here, "samples"))


def _polygon(cx, cy, r, sides, angle):
    return [(cx + r * math.cos(angle + 2 * math.pi * k / sides),
             cy + r * math.sin(angle + 2 * math.pi * k / sides)) for k in range(sides)]


def draw_shape(shape: str, rng: random.Random, size: int = 96) -> Image.Image:
    """One image of `shape` on a random background, with random colour, pose and noise."""
    bg = tuple(rng.randint(0, 255) for _ in range(3))
    img = Image.new("RGB", (size, size), bg)
    draw = ImageDraw.Draw(img)
    # A few faint distractor lines so the background is not flat.
    for _ in range(rng.randint(0, 3)):
        c = tuple(min(255, max(0, v + rng.randint(-60, 60))) for v in bg)
        draw.line([(rng.uniform(0, size), rng.uniform(0, size)) for _ in range(2)], fill=c, width=2)
    # A fill colour far enough from the background to be seen.
    while True:
        fill = tuple(rng.randint(0, 255) for _ in range(3))
        if sum(abs(a - b) for a, b in zip(fill, bg)) > 180:
            break
    r = rng.uniform(0.18, 0.38) * size
    cx, cy = rng.uniform(r, size - r), rng.uniform(r, size - r)
    angle = rng.uniform(0, 2 * math.pi)
    if shape == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif shape == "square":
        draw.polygon(_polygon(cx, cy, r * 1.15, 4, angle), fill=fill)
    elif shape == "triangle":
        draw.polygon(_polygon(cx, cy, r * 1.2, 3, angle), fill=fill)
    else:
        raise ValueError(f"unknown shape {shape}")
    img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))
    noise = np.random.default_rng(rng.randint(0, 2 ** 31)).normal(0, rng.uniform(2, 12), (size, size, 3))
    arr = np.clip(np.asarray(img, np.float32) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def make_shapes(root: str, per_class: int = 80, size: int = 96, seed: int = 0,
                classes=SHAPES) -> str:
    """Write root/CLASS/CLASS_NNN.png for each class (flat layout); deterministic for a seed."""
    for shape in classes:
        folder = os.path.join(root, shape)
        os.makedirs(folder, exist_ok=True)
        rng = random.Random(f"{seed}-{shape}")
        for i in range(per_class):
            draw_shape(shape, rng, size).save(os.path.join(folder, f"{shape}_{i:03d}.png"))
    return root


def ensure_shapes(samples_dir: str | None = None) -> str:
    """The built-in sample dataset, generated on first use (a second or so)."""
    root = os.path.join(samples_dir or default_samples_dir(), f"shapes-v{SAMPLE_VERSION}")
    marker = os.path.join(root, ".complete")
    if not os.path.exists(marker):
        tmp = root + f".tmp-{os.getpid()}"
        make_shapes(tmp)
        open(os.path.join(tmp, ".complete"), "w").close()
        try:
            os.replace(tmp, root)
        except OSError:  # another process made it first
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return root


def download_cats_and_dogs() -> str:
    """The TensorFlow tutorial's cats-vs-dogs photos through Keras' cache; clear error offline."""
    import keras

    try:
        path = keras.utils.get_file("cats_and_dogs_filtered.zip", origin=CATS_AND_DOGS_URL, extract=True)
    except Exception as e:
        raise RuntimeError(
            f"Could not download the cats-vs-dogs sample ({CATS_AND_DOGS_URL}): this machine seems to be "
            f"offline ({type(e).__name__}). Download the zip elsewhere, unpack it and choose its folder, "
            "or use the generated shapes sample.") from None
    for candidate in (os.path.join(path, "cats_and_dogs_filtered"), path):
        if os.path.isdir(os.path.join(candidate, "train")):
            return candidate
    return path
