"""Augmented copies of one image as a zip of PNG files, as the course writes augmented images to disk.

No Streamlit here: the Augment page's download button calls `augmented_zip` only when it is clicked
(outside the page's script run), and tests call it directly.
"""
from __future__ import annotations

import io
import re
import zipfile

import numpy as np
from PIL import Image

FALLBACK_STEM = "image"


def ascii_stem(file_name: str | None) -> str:
    """The name of the image without its extension, reduced to ASCII letters, digits, '-' and '_'."""
    stem = (file_name or "").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", stem.encode("ascii", "ignore").decode()).strip("_")
    return stem or FALLBACK_STEM


def zip_name(stem: str) -> str:
    return f"{stem}_augmented.zip"


def copy_names(stem: str, n: int) -> list[str]:
    """'cat_001_aug_01.png', … : ASCII, sortable, one per copy."""
    width = len(str(n))
    return [f"{stem}_aug_{i:0{width}d}.png" for i in range(1, n + 1)]


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image, np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def augmented_zip(image: np.ndarray, config: dict, n: int, seed: int, stem: str) -> bytes:
    """A zip of n augmented copies of image (uint8 HxWx3), drawn with the training augmentation."""
    from core.augment import AugmentConfig, preview

    copies = preview(image, AugmentConfig.from_dict(config), n, seed)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:  # PNG is compressed already
        for name, copy in zip(copy_names(stem, n), copies):
            archive.writestr(name, png_bytes(copy))
    return buffer.getvalue()
