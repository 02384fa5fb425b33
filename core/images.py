"""One image file: open it, check it, decode it to upright 8-bit RGB, and say why when it cannot be used.

Every reader of images goes through here: the dataset scan (core.data), training's decoding
(core.pipeline), Predict, Inspect. A file that cannot be used raises UnusableImage, whose
message is a sentence a person understands (`why_unusable` turns any other failure into one).

Decoding is bounded in memory: a small compressed file can decode to a huge image, so the
decoded bytes in flight are counted in a DecodeBudget, the server's and each request's.

Names: a file or folder name that is not valid UTF-8 reaches Python surrogate-escaped; it is
read by that exact path but shown, and stored (class names in config.json), as `display_name`.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from core.messages import N_, Explained, Message, message_of

# Decoded images larger than this are refused (a decompression bomb, or a scan nobody needs).
MAX_PIXELS = 40_000_000
ACCEPTED_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "MPO"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
CORRUPT = N_("truncated or corrupt image data ({error})")

ImageFile.LOAD_TRUNCATED_IMAGES = False


class UnusableImage(Explained, ValueError):
    """A file that cannot be used as an image, with the reason (a scan's skip reason, a Predict row's error)."""


def decode_workers(limit: int = 16) -> int:
    """Threads that decode images (PIL releases the GIL while decoding): twice the cores, at most limit."""
    return min(limit, 2 * (os.cpu_count() or 2))


def display_name(name: str) -> str:
    """A file or folder name as text: bytes that are not UTF-8 (surrogate-escaped by Python)
    become the replacement character, so the name can be shown and stored as JSON."""
    return str(name).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def why_unusable(e: Exception) -> Message | str:
    """Why a file cannot be used, in the words of the scan's report: our own checks raise
    UnusableImage (another ValueError says its own text); the file system raises OSError; anything
    else is a decoder bug."""
    if isinstance(e, ValueError):
        return message_of(e)
    if isinstance(e, OSError):
        return Message(N_("cannot be read ({error})"), {"error": e.strerror or str(e)})
    return Message(N_("cannot be decoded ({kind}: {error})"), {"kind": type(e).__name__, "error": str(e)})


# ---------------------------------------------------------------- opening and checking

def _open_checked(path_or_file) -> Image.Image:
    """Image.open plus our checks (format, pixel count), errors as UnusableImage."""
    if isinstance(path_or_file, str) and os.path.getsize(path_or_file) == 0:
        raise UnusableImage(N_("empty file (0 bytes)"))
    try:
        img = Image.open(path_or_file)
    except UnidentifiedImageError:
        raise UnusableImage(N_("not an image (the file's content is not a known image format)")) from None
    except Image.DecompressionBombError:
        raise UnusableImage(N_("too many pixels (over {limit} megapixels)"),
                            limit=f"{MAX_PIXELS / 1e6:.0f}") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # the file, not its content: the callers say "cannot be read"
    except OSError as e:  # the header itself is cut short or damaged
        raise UnusableImage(CORRUPT, error=str(e)) from None
    w, h = img.size
    if img.format not in ACCEPTED_FORMATS:
        img.close()
        raise UnusableImage(N_("unsupported format ({format}); use JPEG, PNG, GIF, BMP, WebP or TIFF"),
                            format=str(img.format))
    if w * h > MAX_PIXELS:
        img.close()
        raise UnusableImage(N_("too many pixels ({width}x{height} = {megapixels} megapixels, limit {limit})"),
                            width=w, height=h, megapixels=f"{w * h / 1e6:.1f}", limit=f"{MAX_PIXELS / 1e6:.0f}")
    if w < 1 or h < 1:
        img.close()
        raise UnusableImage(N_("image has no pixels"))
    return img


def check_file(path: str) -> tuple[Message | str | None, tuple[int, int] | None]:
    """(reason to skip or None, (width, height)). Decodes the whole file, at reduced scale."""
    try:
        with _open_checked(path) as img:
            full_size = img.size
            _decode(img, 64, "stretch")
    except Exception as e:  # a decoder bug must not stop the scan either
        return why_unusable(e), None
    return None, full_size


# ---------------------------------------------------------------- decoding

def _to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode (grayscale, 16-bit, float, palette, RGBA, CMYK...) to 8-bit RGB."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float32)
        top = 65535.0 if img.mode.startswith("I;16") else max(float(arr.max()), 1.0)
        if img.mode == "I" and arr.max() <= 255:
            top = 255.0
        arr = np.clip(arr / top * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode != "RGB":
        return img.convert("RGB")
    return img


# Bytes per pixel and band of the modes PIL decodes to (the rest: one byte per band).
_BAND_BYTES = {"I": 4, "F": 4, "I;16": 2, "I;16B": 2, "I;16L": 2, "I;16N": 2}
# Modes whose pixels can be averaged as they are (a palette index or a 1-bit pixel cannot).
_REDUCIBLE = {"L", "LA", "RGB", "RGBA", "RGBa", "La", "CMYK", "YCbCr"}
REDUCING_GAP = 3.0  # as Image.resize: shrink by whole factors while the image stays 3x the target


def _prepare(img: Image.Image, size: int | None) -> None:
    """Ask the decoder for a smaller image when only size x size is needed: libjpeg decodes at
    1/2, 1/4 or 1/8 scale (the result stays >= size). Other formats decode whole."""
    if size and img.format == "JPEG":
        img.draft("RGB", (size, size))


def decoded_size(img: Image.Image, size: int | None = None) -> int:
    """Bytes an opened (not yet loaded) image takes at most while _decode works on it: the decoded
    pixels, plus, for the modes _shrink cannot reduce (palette, 1-bit, 16-bit), two RGBA copies
    made by the conversion at full size."""
    _prepare(img, size)
    w, h = img.size
    pixels = w * h * len(img.getbands()) * _BAND_BYTES.get(img.mode, 1)
    return pixels if img.mode in _REDUCIBLE else pixels + 2 * 4 * w * h


def _shrink(img: Image.Image, size: int, resize: str) -> Image.Image:
    """Shrink a loaded image by a whole factor (box averaging) right after decoding, so the mode
    conversions that follow work on a small image: a 6300x6300 RGBA PNG is converted at 700x700,
    not at 160 MB a copy. Image.resize would do the same reduction, but only after the conversions."""
    if img.mode not in _REDUCIBLE:
        return img
    w, h = img.size
    if resize == "crop":
        fx = fy = int(min(w, h) / size / REDUCING_GAP)
    else:
        fx, fy = int(w / size / REDUCING_GAP), int(h / size / REDUCING_GAP)
    if max(fx, fy) < 2:
        return img
    return img.reduce((max(fx, 1), max(fy, 1)))


def _decode(img: Image.Image, size: int | None, resize: str = "crop") -> Image.Image:
    """Decode an opened image to upright 8-bit RGB, resized to size x size if given.

    resize="crop" keeps the aspect ratio (the central square, as ImageNet models were trained);
    "stretch" squeezes the whole image into the square.
    """
    if resize not in ("crop", "stretch"):
        raise ValueError(f"unknown resize mode '{resize}' (use crop or stretch)")
    try:
        _prepare(img, size)
        img.seek(0)  # first frame of an animated GIF / WebP / TIFF
        img.load()
        if size:
            img = _shrink(img, size, resize)
        img = ImageOps.exif_transpose(img) or img
        img = _to_rgb(img)
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise UnusableImage(CORRUPT, error=str(e)) from None
    if size:
        box = None
        if resize == "crop":
            w, h = img.size
            side = min(w, h)
            box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        img = img.resize((size, size), Image.BILINEAR, box=box, reducing_gap=REDUCING_GAP)
    return img.copy()


# ---------------------------------------------------------------- memory for decoding

class DecodeBudget:
    """Bytes of decoded images in flight, a semaphore counted in bytes: `hold(n)` waits until n
    bytes are free, then holds them while the image is decoded. A small compressed file can
    decode to a huge image (a 6300x6300 RGBA PNG of 170 KB is 160 MB), so this, not the upload
    size, is what keeps many images from many users within the server's memory.

    A budget with a `parent` (one request's share of the server's) holds the bytes in both.
    An image that alone exceeds the limit, or a wait longer than `wait_seconds` (the server busy
    with other users' images), raises UnusableImage with a sentence, like any unusable file.
    """

    def __init__(self, limit_bytes: int, wait_seconds: float = 30.0, parent: "DecodeBudget | None" = None):
        self.limit, self.wait_seconds, self.parent = int(limit_bytes), wait_seconds, parent
        self.in_use = 0
        self._free = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int):
        if nbytes > self.limit:
            raise UnusableImage(N_("too big once decoded ({size} MB, over the {limit} MB this server decodes "
                                   "at once); use a smaller image"),
                                size=f"{nbytes / 1e6:,.0f}", limit=f"{self.limit / 1e6:,.0f}")
        with self._free:
            if not self._free.wait_for(lambda: self.in_use + nbytes <= self.limit, self.wait_seconds):
                raise UnusableImage(N_("the server is busy decoding other images; try again in a moment"))
            self.in_use += nbytes
        try:
            if self.parent is None:
                yield
            else:
                with self.parent.hold(nbytes):
                    yield
        finally:
            with self._free:
                self.in_use -= nbytes
                self._free.notify_all()


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (Linux), else physical memory; None when neither is known."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _server_decode_bytes() -> int:
    """The server's budget for images being decoded: a quarter of the memory available at start,
    between 256 MB and 2 GB."""
    available = available_memory_bytes() or 4 * 1024 ** 3
    return int(min(2 * 1024 ** 3, max(256 * 1024 ** 2, available // 4)))


REQUEST_DECODE_BYTES = 512 * 1024 ** 2  # one request's share: a few of the biggest images at once
# Images being decoded for predictions, shared by every request of this server.
DECODE_BUDGET = DecodeBudget(_server_decode_bytes())


# ---------------------------------------------------------------- the one way to read an image

def open_image(path_or_file, size: int | None = None, resize: str = "crop",
               budget: DecodeBudget | None = None) -> Image.Image:
    """Open, check and decode one image to upright 8-bit RGB, resized to size x size if given.

    With a `budget`, the decoded bytes are held in it while decoding (waiting for room).
    Raises UnusableImage (a ValueError) with a reason a person understands.
    """
    with _open_checked(path_or_file) as img:
        if budget is None:
            return _decode(img, size, resize)
        with budget.hold(decoded_size(img, size)):
            return _decode(img, size, resize)


def load_image(path_or_file, size: int, resize: str = "crop", budget: DecodeBudget | None = None) -> np.ndarray:
    """One image as a uint8 array of shape (size, size, 3), the way training sees it."""
    return np.asarray(open_image(path_or_file, size, resize, budget), dtype=np.uint8)
