"""Dataset folders: scan and validate every file up front, split, decode once, feed tf.data.

Two layouts are read:
  DIR/{train,validation|val,test}/CLASS/*   (split folders)
  DIR/CLASS/*                               (then a seeded, stratified split)

Every file is checked before any training starts; the ones that cannot be used are listed in
`Dataset.skipped` with a reason a person understands. Nothing is ever written into DIR.

Paths: every file listed, read or trained on resolves (links followed) inside the folders it may
come from: its class folder, and the data roots (`within`). `real_path_within` is the one check;
the dashboard's typed paths, the scan and the Predict folder all go through it.

Names: a file or folder name that is not valid UTF-8 reaches Python surrogate-escaped; it is
read by that exact path but shown, and stored (class names in config.json), as `display_name`.
"""
from __future__ import annotations

import os
import random
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from core.sample import default_samples_dir

# Decoded images larger than this are refused (a decompression bomb, or a scan nobody needs).
MAX_PIXELS = 40_000_000
ACCEPTED_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "MPO"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
SPLIT_FOLDERS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
SPLITS = ("train", "validation", "test")
ROOTS_ENV = "TRANSFERLAB_DATA_ROOTS"
OUTSIDE_CLASS = "link leads outside its class folder"
OUTSIDE_ROOTS = "link leads outside the folders this server may read"

ImageFile.LOAD_TRUNCATED_IMAGES = False


def decode_workers(limit: int = 16) -> int:
    """Threads that decode images (PIL releases the GIL while decoding): twice the cores, at most limit."""
    return min(limit, 2 * (os.cpu_count() or 2))


def display_name(name: str) -> str:
    """A file or folder name as text: bytes that are not UTF-8 (surrogate-escaped by Python)
    become the replacement character, so the name can be shown and stored as JSON."""
    return str(name).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def why_unusable(e: Exception) -> str:
    """Why a file cannot be used, in the words of the scan's report: our own checks raise
    ValueError with the reason; the file system raises OSError; anything else is a decoder bug."""
    if isinstance(e, ValueError):
        return str(e)
    if isinstance(e, OSError):
        return f"cannot be read ({e.strerror or e})"
    return f"cannot be decoded ({type(e).__name__}: {e})"


# ---------------------------------------------------------------- where files may come from

def data_roots() -> list[str]:
    """TRANSFERLAB_DATA_ROOTS (':'-separated), default the working directory; the samples always."""
    env = os.environ.get(ROOTS_ENV, "")
    roots = [r for r in env.split(os.pathsep) if r.strip()] or [os.getcwd()]
    # Our own generated sample is always readable, whatever the roots.
    roots.append(default_samples_dir())
    out = []
    for r in roots:
        real = os.path.realpath(os.path.expanduser(r.strip()))
        if real not in out:
            out.append(real)
    return out


def is_inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def real_path_within(path: str, within: list[str]) -> str | None:
    """The real path of `path` (every link and '..' resolved) when it lies inside one of the
    real folders `within`; None when it leads anywhere else. ValueError for a path no file can
    have (an embedded NUL byte)."""
    real = os.path.realpath(os.path.expanduser(str(path)))
    return real if any(is_inside(real, r) for r in within) else None


class DatasetError(ValueError):
    """A dataset that cannot be trained on, with a sentence saying what to do."""


@dataclass
class Skipped:
    path: str
    reason: str


@dataclass
class Dataset:
    root: str
    layout: str  # "split" (train/validation/test folders) or "flat" (class folders, split by us)
    classes: list[str]
    splits: dict[str, list[tuple[str, int]]]  # split -> [(path, label)]
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (width, height)
    # The folder name of each class (classes[i] is display_name(class_folders[i]), what is shown
    # and stored in config.json); files are read by their paths in `splits`, never by class name.
    class_folders: list[str] = field(default_factory=list)

    @property
    def has_test(self) -> bool:
        return bool(self.splits.get("test"))

    def counts(self) -> dict[str, dict[str, int]]:
        """{split: {class: number of usable images}}."""
        out = {}
        for split, items in self.splits.items():
            per_class = {c: 0 for c in self.classes}
            for _, label in items:
                per_class[self.classes[label]] += 1
            out[split] = per_class
        return out

    def summary(self) -> str:
        parts = [f"{split} {len(items)}" for split, items in self.splits.items() if items]
        return (f"{len(self.classes)} classes ({', '.join(self.classes)}); " + ", ".join(parts)
                + f"; {len(self.skipped)} skipped")


# ---------------------------------------------------------------- reading one image

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


def _open_checked(path_or_file) -> Image.Image:
    """Image.open plus our checks (format, pixel count), errors as readable ValueErrors."""
    if isinstance(path_or_file, str) and os.path.getsize(path_or_file) == 0:
        raise ValueError("empty file (0 bytes)")
    try:
        img = Image.open(path_or_file)
    except UnidentifiedImageError:
        raise ValueError("not an image (the file's content is not a known image format)") from None
    except Image.DecompressionBombError:
        raise ValueError(f"too many pixels (over {MAX_PIXELS / 1e6:.0f} megapixels)") from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise  # the file, not its content: the callers say "cannot be read"
    except OSError as e:  # the header itself is cut short or damaged
        raise ValueError(f"truncated or corrupt image data ({e})") from None
    w, h = img.size
    if img.format not in ACCEPTED_FORMATS:
        img.close()
        raise ValueError(f"unsupported format ({img.format}); use JPEG, PNG, GIF, BMP, WebP or TIFF")
    if w * h > MAX_PIXELS:
        img.close()
        raise ValueError(f"too many pixels ({w}x{h} = {w * h / 1e6:.1f} megapixels, "
                         f"limit {MAX_PIXELS / 1e6:.0f})")
    if w < 1 or h < 1:
        img.close()
        raise ValueError("image has no pixels")
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
        raise ValueError(f"truncated or corrupt image data ({e})") from None
    if size:
        box = None
        if resize == "crop":
            w, h = img.size
            side = min(w, h)
            box = ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        img = img.resize((size, size), Image.BILINEAR, box=box, reducing_gap=REDUCING_GAP)
    return img.copy()


class DecodeBudget:
    """Bytes of decoded images in flight, a semaphore counted in bytes: `hold(n)` waits until n
    bytes are free, then holds them while the image is decoded. A small compressed file can
    decode to a huge image (a 6300x6300 RGBA PNG of 170 KB is 160 MB), so this, not the upload
    size, is what keeps many images from many users within the server's memory.

    A budget with a `parent` (one request's share of the server's) holds the bytes in both.
    An image that alone exceeds the limit, or a wait longer than `wait_seconds` (the server busy
    with other users' images), raises ValueError with a sentence, like any unusable file.
    """

    def __init__(self, limit_bytes: int, wait_seconds: float = 30.0, parent: "DecodeBudget | None" = None):
        self.limit, self.wait_seconds, self.parent = int(limit_bytes), wait_seconds, parent
        self.in_use = 0
        self._free = threading.Condition()

    @contextmanager
    def hold(self, nbytes: int):
        if nbytes > self.limit:
            raise ValueError(f"too big once decoded ({nbytes / 1e6:,.0f} MB, over the {self.limit / 1e6:,.0f} MB "
                             "this server decodes at once); use a smaller image")
        with self._free:
            if not self._free.wait_for(lambda: self.in_use + nbytes <= self.limit, self.wait_seconds):
                raise ValueError("the server is busy decoding other images; try again in a moment")
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


def _server_decode_bytes() -> int:
    """The server's budget for images being decoded: a quarter of the memory available at start,
    between 256 MB and 2 GB."""
    available = available_memory_bytes() or 4 * 1024 ** 3
    return int(min(2 * 1024 ** 3, max(256 * 1024 ** 2, available // 4)))


REQUEST_DECODE_BYTES = 512 * 1024 ** 2  # one request's share: a few of the biggest images at once


def open_image(path_or_file, size: int | None = None, resize: str = "crop",
               budget: DecodeBudget | None = None) -> Image.Image:
    """Open, check and decode one image to upright 8-bit RGB, resized to size x size if given.

    With a `budget`, the decoded bytes are held in it while decoding (waiting for room).
    Raises ValueError with a reason a person understands.
    """
    with _open_checked(path_or_file) as img:
        if budget is None:
            return _decode(img, size, resize)
        with budget.hold(decoded_size(img, size)):
            return _decode(img, size, resize)


def load_image(path_or_file, size: int, resize: str = "crop", budget: DecodeBudget | None = None) -> np.ndarray:
    """One image as a uint8 array of shape (size, size, 3), the way training sees it."""
    return np.asarray(open_image(path_or_file, size, resize, budget), dtype=np.uint8)


def _check_file(path: str) -> tuple[str | None, tuple[int, int] | None]:
    """(reason to skip or None, (width, height)). Decodes the whole file, at reduced scale."""
    try:
        with _open_checked(path) as img:
            full_size = img.size
            _decode(img, 64, "stretch")
    except Exception as e:  # a decoder bug must not stop the scan either
        return why_unusable(e), None
    return None, full_size


# ---------------------------------------------------------------- scanning folders

def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__MACOSX") or name == "Thumbs.db"


def list_images(folder: str, skipped: list[Skipped] | None = None, within: list[str] | None = None,
                outside: str = OUTSIDE_CLASS) -> list[str]:
    """Every non-hidden file under folder (subfolders too, links followed), each real file once.

    A file or subfolder whose link leads outside the real `within` folders (default: folder
    itself) is not listed, and goes to `skipped` with the reason `outside`, as do folders that
    cannot be listed. A link back into a folder already listed (a loop) is not followed again.
    """
    within = within or [os.path.realpath(folder)]
    out, seen_folders, seen_files = [], set(), set()

    def skip(path: str, reason: str) -> None:
        if skipped is not None:
            skipped.append(Skipped(path, reason))

    pending = [folder]
    while pending:
        here = pending.pop()
        real_here = os.path.realpath(here)
        if real_here in seen_folders:
            continue
        seen_folders.add(real_here)
        try:
            with os.scandir(here) as listing:
                entries = sorted((e for e in listing if not _is_hidden(e.name)), key=lambda e: e.name)
        except OSError as e:
            skip(here, f"folder cannot be read ({e.strerror or e})")
            continue
        subfolders = []
        for entry in entries:
            real = os.path.realpath(entry.path) if entry.is_symlink() else os.path.join(real_here, entry.name)
            if not any(is_inside(real, r) for r in within):
                skip(entry.path, outside)
            elif _is_folder(entry):
                subfolders.append(entry.path)
            elif real not in seen_files:  # a second link to a file already listed adds nothing
                seen_files.add(real)
                out.append(entry.path)
        pending.extend(reversed(subfolders))  # depth first, in name order, as os.walk
    return out


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _class_folders(parent: str, within: list[str], skipped: list[Skipped]) -> list[str]:
    """The visible subfolders of parent that may be read as class (or split) folders, by name.

    One that is a link is refused when it leads outside `within` (the data roots), or back into
    or above parent (`dogs2 -> dogs`, `all -> ..`): those files are listed where they really are.
    """
    out = []
    real_parent = os.path.realpath(parent)
    for name in _subfolders(parent):
        path = os.path.join(parent, name)
        real = os.path.realpath(path)
        if not any(is_inside(real, r) for r in within):
            skipped.append(Skipped(path, OUTSIDE_ROOTS))
        elif real != os.path.join(real_parent, name) and (is_inside(real, real_parent) or is_inside(real_parent, real)):
            skipped.append(Skipped(path, "link to another folder of this dataset (its files are listed there)"))
        else:
            out.append(name)
    return out


def _subfolders(folder: str) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if _is_folder(e) and not _is_hidden(e.name))


def _stray_files(folder: str) -> list[str]:
    return sorted(e.path for e in os.scandir(folder)
                  if e.is_file() and not _is_hidden(e.name))


def _stratified_split(items: list[tuple[str, int]], n_classes: int, val_fraction: float,
                      test_fraction: float, seed: int) -> dict[str, list[tuple[str, int]]]:
    rng = random.Random(seed)
    out = {s: [] for s in SPLITS}
    for label in range(n_classes):
        group = sorted(p for p, lab in items if lab == label)
        rng.shuffle(group)
        n = len(group)
        n_test = int(round(n * test_fraction)) if n >= 3 else 0
        n_val = int(round(n * val_fraction)) if n >= 2 else 0
        n_val = min(n_val, n - n_test - 1) if n - n_test > 1 else 0
        out["test"] += [(p, label) for p in group[:n_test]]
        out["validation"] += [(p, label) for p in group[n_test:n_test + n_val]]
        out["train"] += [(p, label) for p in group[n_test + n_val:]]
    return out


def scan(root: str, val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0,
         workers: int | None = None, within: list[str] | None = None, progress=None) -> Dataset:
    """Read a dataset folder and check every file in it (decoding each one, in parallel).

    Every file read resolves inside its class folder and inside the real folders `within` (the
    data roots; default the dataset folder itself); the others are skipped with the reason.
    `progress(done, total)` is called while the files are checked.
    """
    root = os.path.abspath(os.path.expanduser(str(root)))
    shown = display_name(root)
    if not os.path.exists(root):
        raise DatasetError(f"Folder not found: {shown}")
    if not os.path.isdir(root):
        raise DatasetError(f"Not a folder: {shown}")
    if not os.access(root, os.R_OK | os.X_OK):
        raise DatasetError(f"Folder cannot be read (permission denied): {shown}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DatasetError("Split fractions must be between 0 and 1 and add up to less than 1.")
    within = [os.path.realpath(r) for r in within] if within else [os.path.realpath(root)]

    skipped, warnings = [], []
    top = _class_folders(root, within, skipped)
    split_dirs = {SPLIT_FOLDERS[d.lower()]: d for d in top if d.lower() in SPLIT_FOLDERS}

    def list_classes(folder: str) -> dict[str, list[str]]:
        return {c: list_images(os.path.join(folder, c), skipped) for c in _class_folders(folder, within, skipped)}

    raw: dict[str, dict[str, list[str]]] = {}  # split -> class folder -> files
    if "train" in split_dirs:
        layout = "split"
        for other in sorted(set(top) - set(split_dirs.values())):
            warnings.append(f"Folder '{display_name(other)}' ignored: with split folders, only train, "
                            "validation (or val) and test are read.")
        for split, name in split_dirs.items():
            folder = os.path.join(root, name)
            raw[split] = list_classes(folder)
            skipped += [Skipped(p, "not inside a class folder") for p in _stray_files(folder)]
    else:
        layout = "flat"
        raw["all"] = list_classes(root)
    skipped += [Skipped(p, "not inside a class folder") for p in _stray_files(root)]

    # Check every file once, in parallel (PIL releases the GIL while decoding).
    all_files = sorted({p for per_class in raw.values() for files in per_class.values() for p in files})
    checks = {}
    with ThreadPoolExecutor(workers or decode_workers()) as pool:
        for done, (path, check) in enumerate(zip(all_files, pool.map(_check_file, all_files)), 1):
            checks[path] = check
            if progress and (done % 256 == 0 or done == len(all_files)):
                progress(done, len(all_files))
    sizes = {p: s for p, (reason, s) in checks.items() if reason is None}
    skipped += [Skipped(p, reason) for p, (reason, _) in checks.items() if reason is not None]

    source = raw.get("train", raw.get("all", {}))
    usable = {c: [p for p in files if p in sizes] for c, files in source.items()}
    unreadable = {os.path.realpath(s.path): s.reason for s in skipped if s.reason.startswith("folder cannot")}
    for c, files in usable.items():
        why = unreadable.get(os.path.realpath(os.path.join(root, split_dirs.get("train", ""), c)))
        if not source[c] and why:
            warnings.append(f"Class folder '{display_name(c)}' was ignored: its {why}.")
        elif not source[c]:
            warnings.append(f"Class folder '{display_name(c)}' is empty and was ignored.")
        elif not files:
            warnings.append(f"Class folder '{display_name(c)}' has no usable image and was ignored.")
    class_folders = [c for c, files in usable.items() if files]
    if len(class_folders) < 2:
        found = ", ".join(f"'{display_name(c)}'" for c in class_folders) or "none"
        raise DatasetError(
            f"Need at least two class folders with usable images in {shown} "
            f"(found {found}). Put each class's images in its own subfolder, e.g. "
            f"{shown}/cats/*.jpg and {shown}/dogs/*.jpg.")
    index = {c: i for i, c in enumerate(class_folders)}

    if layout == "flat":
        items = [(p, index[c]) for c in class_folders for p in usable[c]]
        splits = _stratified_split(items, len(class_folders), val_fraction, test_fraction, seed)
    else:
        splits = {}
        for split in SPLITS:
            items = []
            for c, files in raw.get(split, {}).items():
                good = [p for p in files if p in sizes]
                if c not in index:
                    if good and split != "train":
                        warnings.append(f"Class '{display_name(c)}' of the {split} folder is not in train; "
                                        f"its {len(good)} images were ignored.")
                    continue
                items += [(p, index[c]) for p in good]
            splits[split] = items
        if not splits["validation"]:
            # No validation folder: carve one out of train, stratified and seeded.
            carved = _stratified_split(splits["train"], len(class_folders), val_fraction or 0.15, 0, seed)
            splits["train"], splits["validation"] = carved["train"], carved["validation"]
            warnings.append("No validation folder: a stratified share of train is used for validation.")
    return Dataset(root, layout, class_names(class_folders), splits, skipped, warnings, sizes, class_folders)


def class_names(folders: list[str]) -> list[str]:
    """The class names shown and stored for these class folder names: display_name, and when two
    differ only in bytes that are not UTF-8, a number after the second so every name is unique."""
    out = []
    for folder in folders:
        name, n = display_name(folder), 2
        while name in out:
            name, n = f"{display_name(folder)} ({n})", n + 1
        out.append(name)
    return out


# ---------------------------------------------------------------- decoding once, in memory

class DecodeCache:
    """load_arrays' results, most recently used last, holding at most `limit_bytes` of images
    (default: the memory budget at the time of each put, so the cache and a training's decoded
    images come out of the same budget). A second run on the same data decodes nothing."""

    def __init__(self, limit_bytes: int | None = None):
        self.limit_bytes = limit_bytes
        self._entries: "OrderedDict[tuple, tuple]" = OrderedDict()
        self._lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(images.nbytes for images, *_ in self._entries.values())

    def get(self, key: tuple):
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        return None

    def put(self, key: tuple, result: tuple) -> None:
        limit = self.limit_bytes
        if limit is None:
            try:
                limit = memory_budget()
            except DatasetError:  # a bad TRANSFERLAB_MEMORY_BUDGET_MB: the training says so; keep nothing
                limit = 0
        with self._lock:
            self._entries[key] = result
            while self._entries and sum(r[0].nbytes for r in self._entries.values()) > limit:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


DECODE_CACHE = DecodeCache()


def load_arrays(items: list[tuple[str, int]], size: int, skipped: list[Skipped] | None = None,
                workers: int | None = None, progress=None,
                resize: str = "crop") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode and resize every (path, label) once: (uint8 images [N,size,size,3], labels, paths).

    A file that fails now (changed since the scan) is appended to `skipped`, never raised.
    Results are kept in DECODE_CACHE, so a second run on the same data decodes nothing.
    """
    key = (tuple(items), size, resize)
    cached = DECODE_CACHE.get(key)
    if cached is not None:
        return cached
    images = np.zeros((len(items), size, size, 3), np.uint8)
    ok = np.zeros(len(items), bool)

    def work(i):
        try:
            images[i] = load_image(items[i][0], size, resize)
            ok[i] = True
        except Exception as e:  # recorded below, never raised into training
            return Skipped(items[i][0], why_unusable(e))
        return None

    failures = []
    with ThreadPoolExecutor(workers or decode_workers()) as pool:
        for done, result in enumerate(pool.map(work, range(len(items))), 1):
            if result:
                failures.append(result)
            if progress and (done % 64 == 0 or done == len(items)):
                progress(done, len(items))
    if skipped is not None:
        skipped.extend(failures)
    labels = np.array([lab for _, lab in items], np.int32)[ok]
    paths = [p for (p, _), good in zip(items, ok) if good]
    result = (images[ok] if not ok.all() else images, labels, paths)
    DECODE_CACHE.put(key, result)
    return result


# ---------------------------------------------------------------- the memory budget, streaming

BUDGET_ENV = "TRANSFERLAB_MEMORY_BUDGET_MB"


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


def memory_budget(megabytes: float | None = None) -> int:
    """Bytes of decoded images a training may hold in memory: `megabytes` if given, else
    TRANSFERLAB_MEMORY_BUDGET_MB, else half of the memory available now (2 GB when unknown).

    The decode cache is part of it: what the cache holds counts as available (it is dropped,
    oldest first, to make room), and the cache itself never holds more than the budget."""
    if megabytes is None and os.environ.get(BUDGET_ENV, "").strip():
        try:
            megabytes = float(os.environ[BUDGET_ENV])
        except ValueError:
            raise DatasetError(f"{BUDGET_ENV} must be a number of megabytes, "
                               f"not '{os.environ[BUDGET_ENV]}'.") from None
    if megabytes is not None:
        if megabytes < 0:
            raise DatasetError("The memory budget must be 0 MB or more.")
        return int(megabytes * 1024 ** 2)
    available = available_memory_bytes()
    return (available + DECODE_CACHE.nbytes) // 2 if available else 2 * 1024 ** 3


# Images being decoded for predictions, shared by every request of this server (see DecodeBudget).
DECODE_BUDGET = DecodeBudget(_server_decode_bytes())


def decoded_bytes(n_images: int, size: int) -> int:
    """Memory of n decoded images as uint8 (what load_arrays holds)."""
    return n_images * size * size * 3


class FileImages:
    """The images of (path, label) items read from their files on demand: a stand-in for
    load_arrays' uint8 array when the whole dataset does not fit the memory budget.

    `files[i]`, `files[a:b]` and `files[index_array]` decode those files (on a thread pool; PIL
    releases the GIL) and return uint8 arrays like the in-memory one. Nothing is kept between calls.
    A file that cannot be read any more (changed since the scan) comes back black and is reported
    once in `skipped`, so a training never stops halfway because of one file.
    """

    dtype = np.dtype(np.uint8)
    nbytes = 0  # held in memory: nothing but the paths

    def __init__(self, paths: list[str], size: int, resize: str = "crop",
                 skipped: list[Skipped] | None = None, workers: int | None = None):
        self.paths, self.size, self.resize = list(paths), size, resize
        self.skipped = skipped if skipped is not None else []
        self.workers = workers or decode_workers(8)
        self._failed: set[str] = set()
        self._lock = threading.Lock()

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return (len(self.paths), self.size, self.size, 3)

    def __len__(self) -> int:
        return len(self.paths)

    def _one(self, i: int) -> np.ndarray:
        path = self.paths[i]
        try:
            return load_image(path, self.size, self.resize)
        except Exception as e:  # reported once, never raised into training
            reason = why_unusable(e)
            with self._lock:
                if path not in self._failed:
                    self._failed.add(path)
                    self.skipped.append(Skipped(path, reason + " (changed during training: used as a black image)"))
            return np.zeros((self.size, self.size, 3), np.uint8)

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, (int, np.integer)):
            return self._one(range(len(self))[key])
        indices = range(len(self))[key] if isinstance(key, slice) else np.asarray(key, dtype=np.int64).ravel()
        out = np.empty((len(indices), self.size, self.size, 3), np.uint8)
        # A pool per batch (thread start-up is ~1 % of decoding a batch): nothing to close, nothing
        # left running when a training stops or fails.
        workers = min(self.workers, max(1, len(indices)))
        with ThreadPoolExecutor(workers, thread_name_prefix="transferlab-decode") as pool:
            for j, image in enumerate(pool.map(self._one, [int(i) for i in indices])):
                out[j] = image
        return out


def file_images(items: list[tuple[str, int]], size: int, skipped: list[Skipped] | None = None,
                resize: str = "crop") -> tuple[FileImages, np.ndarray, list[str]]:
    """load_arrays' result, streamed: (FileImages, labels, paths). Decodes nothing now."""
    paths = [p for p, _ in items]
    return (FileImages(paths, size, resize, skipped), np.array([lab for _, lab in items], np.int32), paths)


# ---------------------------------------------------------------- tf.data over arrays, without copying them

def batch_dataset(arrays, labels: np.ndarray, batch_size: int, shuffle: bool = False, seed: int = 0,
                  views: int = 1, replicas: int | None = None):
    """Batches of rows of `arrays` (a numpy array, a FileImages, or a tuple of them) as float32, with
    their labels, for tf.data.

    Only indices go through tf.data; each batch's rows are taken from the arrays when it is needed
    (tf.numpy_function), so nothing is copied whole into TensorFlow (Dataset.from_tensor_slices
    would hold a second copy of everything). `shuffle` draws a new seeded order every epoch. With
    views > 1 the arrays are shaped [N, views, ...] and each sample's view is drawn at random every
    epoch (cached augmented views).

    `replicas` (default: the tf.distribute strategy in scope): a last batch smaller than the
    replicas would leave one of them empty, which TensorFlow cannot run. Shuffled (training), those
    few samples sit this epoch out; in order (validation), the batch is padded with copies of the
    last row: take the first len(labels) predictions (core.training.predict_all does).
    """
    import tensorflow as tf

    several = isinstance(arrays, tuple)
    parts = arrays if several else (arrays,)
    labels = np.asarray(labels, np.int32)
    n = len(labels)
    if replicas is None:
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
    tail = n % batch_size
    drop = shuffle and 0 < tail < replicas
    pad = replicas - tail if not shuffle and 0 < tail < replicas and n else 0

    def rows(idx, picked):
        if views > 1:
            return tuple(a[idx, picked] for a in parts) + (labels[idx],)
        if len(idx) and idx[-1] - idx[0] == len(idx) - 1 and (np.diff(idx) == 1).all():
            idx = slice(int(idx[0]), int(idx[-1]) + 1)  # contiguous (no shuffle): read as a slice
        return tuple(a[idx] for a in parts) + (labels[idx],)

    dtypes = [tf.as_dtype(a.dtype) for a in parts]
    shapes = [(None,) + tuple(a.shape[1 + (views > 1):]) for a in parts]

    def fetch(idx):
        picked = tf.random.uniform(tf.shape(idx), 0, views, dtype=tf.int64) if views > 1 else idx
        out = tf.numpy_function(rows, [idx, picked], dtypes + [tf.int32], stateful=views > 1)
        for t, shape in zip(out, shapes + [(None,)]):
            t.set_shape(shape)
        x = tuple(tf.cast(t, tf.float32) for t in out[:-1])
        return (x if several else x[0]), out[-1]

    ds = tf.data.Dataset.range(n)
    if pad:
        ds = ds.concatenate(tf.data.Dataset.from_tensor_slices(np.full(pad, n - 1, np.int64)))
    if shuffle:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    if drop:
        ds = ds.take(n - tail)
    return ds.batch(batch_size).map(fetch, num_parallel_calls=tf.data.AUTOTUNE)


def make_tf_dataset(images, labels: np.ndarray, batch_size: int, shuffle: bool = False,
                    seed: int = 0, augmentation=None):
    """A batched, prefetched tf.data pipeline over decoded images (float32 0..255, labels int).

    `images`: load_arrays' uint8 array, or a FileImages (decoded from the files batch by batch).
    `augmentation` (core.augment.build_augmentation) runs here, in the pipeline, so it overlaps
    with training and never ends up inside a saved model.
    """
    import tensorflow as tf

    ds = batch_dataset(images, labels, batch_size, shuffle=shuffle, seed=seed)
    if augmentation is not None and augmentation.layers:
        ds = ds.map(lambda x, y: (augmentation(x, training=True), y), num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)
