"""Dataset folders: scan and validate every file up front, split, decode once, feed tf.data.

Two layouts are read:
  DIR/{train,validation|val,test}/CLASS/*   (split folders)
  DIR/CLASS/*                               (then a seeded, stratified split)

Every file is checked before any training starts; the ones that cannot be used are listed in
`Dataset.skipped` with a reason a person understands. Nothing is ever written into DIR.
"""
from __future__ import annotations

import os
import random
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

# Decoded images larger than this are refused (a decompression bomb, or a scan nobody needs).
MAX_PIXELS = 40_000_000
ACCEPTED_FORMATS = {"JPEG", "PNG", "GIF", "BMP", "WEBP", "TIFF", "MPO"}
IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"}
SPLIT_FOLDERS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
SPLITS = ("train", "validation", "test")

ImageFile.LOAD_TRUNCATED_IMAGES = False


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


def _decode(img: Image.Image, size: int | None, resize: str = "crop") -> Image.Image:
    """Decode an opened image to upright 8-bit RGB, resized to size x size if given.

    resize="crop" keeps the aspect ratio (the central square, as ImageNet models were trained);
    "stretch" squeezes the whole image into the square.
    """
    try:
        if size and img.format == "JPEG":
            # Let libjpeg decode at 1/2, 1/4 or 1/8 scale when the result stays >= size.
            img.draft("RGB", (size, size))
        img.seek(0)  # first frame of an animated GIF / WebP / TIFF
        img.load()
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
        elif resize != "stretch":
            raise ValueError(f"unknown resize mode '{resize}' (use crop or stretch)")
        img = img.resize((size, size), Image.BILINEAR, box=box, reducing_gap=3.0)
    return img.copy()


def open_image(path_or_file, size: int | None = None, resize: str = "crop") -> Image.Image:
    """Open, check and decode one image to upright 8-bit RGB, resized to size x size if given.

    Raises ValueError with a reason a person understands.
    """
    with _open_checked(path_or_file) as img:
        return _decode(img, size, resize)


def load_image(path_or_file, size: int, resize: str = "crop") -> np.ndarray:
    """One image as a uint8 array of shape (size, size, 3), the way training sees it."""
    return np.asarray(open_image(path_or_file, size, resize), dtype=np.uint8)


def _check_file(path: str) -> tuple[str | None, tuple[int, int] | None]:
    """(reason to skip or None, (width, height)). Decodes the whole file, at reduced scale."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file (0 bytes)", None
        with _open_checked(path) as img:
            full_size = img.size
            _decode(img, 64, "stretch")
    except ValueError as e:
        return str(e), None
    except OSError as e:
        return f"cannot be read ({e.strerror or e})", None
    except Exception as e:  # a decoder bug must not stop the scan
        return f"cannot be decoded ({type(e).__name__}: {e})", None
    return None, full_size


# ---------------------------------------------------------------- scanning folders

def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__MACOSX") or name == "Thumbs.db"


def _list_files(folder: str, unreadable: list[Skipped] | None = None) -> list[str]:
    """All non-hidden files under folder, following symlinks but never looping.

    Folders that cannot be listed are appended to `unreadable` (with the reason).
    """
    out, seen = [], set()

    def failed(e: OSError) -> None:
        if unreadable is not None:
            unreadable.append(Skipped(e.filename or folder, f"folder cannot be read ({e.strerror or e})"))

    for dirpath, dirnames, filenames in os.walk(folder, onerror=failed, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        out.extend(os.path.join(dirpath, f) for f in sorted(filenames) if not _is_hidden(f))
    return out


def _subfolders(folder: str) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_dir() and not _is_hidden(e.name))


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
         workers: int | None = None) -> Dataset:
    """Read a dataset folder and check every file in it (decoding each one, in parallel)."""
    root = os.path.abspath(os.path.expanduser(str(root)))
    if not os.path.exists(root):
        raise DatasetError(f"Folder not found: {root}")
    if not os.path.isdir(root):
        raise DatasetError(f"Not a folder: {root}")
    if not os.access(root, os.R_OK | os.X_OK):
        raise DatasetError(f"Folder cannot be read (permission denied): {root}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DatasetError("Split fractions must be between 0 and 1 and add up to less than 1.")

    top = _subfolders(root)
    split_dirs = {SPLIT_FOLDERS[d.lower()]: d for d in top if d.lower() in SPLIT_FOLDERS}
    skipped, warnings = [], []
    list_files = lambda folder: _list_files(folder, skipped)  # noqa: E731  unreadable folders reported
    raw: dict[str, dict[str, list[str]]] = {}  # split -> class -> files
    if "train" in split_dirs:
        layout = "split"
        for other in sorted(set(top) - set(split_dirs.values())):
            warnings.append(f"Folder '{other}' ignored: with split folders, only train, "
                            "validation (or val) and test are read.")
        for split, name in split_dirs.items():
            folder = os.path.join(root, name)
            raw[split] = {c: list_files(os.path.join(folder, c)) for c in _subfolders(folder)}
            skipped += [Skipped(p, "not inside a class folder") for p in _stray_files(folder)]
    else:
        layout = "flat"
        raw["all"] = {c: list_files(os.path.join(root, c)) for c in top}
    skipped += [Skipped(p, "not inside a class folder") for p in _stray_files(root)]

    # Check every file once, in parallel (PIL releases the GIL while decoding).
    all_files = sorted({p for per_class in raw.values() for files in per_class.values() for p in files})
    with ThreadPoolExecutor(workers or min(16, 2 * (os.cpu_count() or 2))) as pool:
        checks = dict(zip(all_files, pool.map(_check_file, all_files)))
    sizes = {p: s for p, (reason, s) in checks.items() if reason is None}
    skipped += [Skipped(p, reason) for p, (reason, _) in checks.items() if reason is not None]

    source = raw.get("train", raw.get("all", {}))
    usable = {c: [p for p in files if p in sizes] for c, files in source.items()}
    unreadable = {os.path.realpath(s.path): s.reason for s in skipped if s.reason.startswith("folder cannot")}
    for c, files in usable.items():
        why = unreadable.get(os.path.realpath(os.path.join(root, split_dirs.get("train", ""), c)))
        if not source[c] and why:
            warnings.append(f"Class folder '{c}' was ignored: its {why}.")
        elif not source[c]:
            warnings.append(f"Class folder '{c}' is empty and was ignored.")
        elif not files:
            warnings.append(f"Class folder '{c}' has no usable image and was ignored.")
    classes = [c for c, files in usable.items() if files]
    if len(classes) < 2:
        found = ", ".join(f"'{c}'" for c in classes) or "none"
        raise DatasetError(
            f"Need at least two class folders with usable images in {root} "
            f"(found {found}). Put each class's images in its own subfolder, e.g. "
            f"{root}/cats/*.jpg and {root}/dogs/*.jpg.")
    index = {c: i for i, c in enumerate(classes)}

    if layout == "flat":
        items = [(p, index[c]) for c in classes for p in usable[c]]
        splits = _stratified_split(items, len(classes), val_fraction, test_fraction, seed)
    else:
        splits = {}
        for split in SPLITS:
            items = []
            for c, files in raw.get(split, {}).items():
                good = [p for p in files if p in sizes]
                if c not in index:
                    if good and split != "train":
                        warnings.append(f"Class '{c}' of the {split} folder is not in train; "
                                        f"its {len(good)} images were ignored.")
                    continue
                items += [(p, index[c]) for p in good]
            splits[split] = items
        if not splits["validation"]:
            # No validation folder: carve one out of train, stratified and seeded.
            carved = _stratified_split(splits["train"], len(classes), val_fraction or 0.15, 0, seed)
            splits["train"], splits["validation"] = carved["train"], carved["validation"]
            warnings.append("No validation folder: a stratified share of train is used for validation.")
    return Dataset(root, layout, classes, splits, skipped, warnings, sizes)


# ---------------------------------------------------------------- decoding once, in memory

_cache: "OrderedDict[tuple, tuple[np.ndarray, np.ndarray]]" = OrderedDict()
_cache_lock = threading.Lock()
CACHE_BYTES = 3 * 1024 ** 3


def _why_unreadable(e: Exception) -> str:
    """The reason a file failed after the scan, in the words of the scan's report."""
    return str(e) if isinstance(e, ValueError) else f"cannot be read ({getattr(e, 'strerror', None) or e})"


def load_arrays(items: list[tuple[str, int]], size: int, skipped: list[Skipped] | None = None,
                workers: int | None = None, progress=None,
                resize: str = "crop") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Decode and resize every (path, label) once: (uint8 images [N,size,size,3], labels, paths).

    A file that fails now (changed since the scan) is appended to `skipped`, never raised.
    Results are kept in a small in-process cache, so a second run on the same data decodes nothing.
    """
    key = (tuple(items), size, resize)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    images = np.zeros((len(items), size, size, 3), np.uint8)
    ok = np.zeros(len(items), bool)

    def work(i):
        try:
            images[i] = load_image(items[i][0], size, resize)
            ok[i] = True
        except Exception as e:  # recorded below, never raised into training
            reason = _why_unreadable(e)
            return Skipped(items[i][0], reason)
        return None

    failures = []
    with ThreadPoolExecutor(workers or min(16, 2 * (os.cpu_count() or 2))) as pool:
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
    with _cache_lock:
        _cache[key] = result
        while sum(r[0].nbytes for r in _cache.values()) > CACHE_BYTES and len(_cache) > 1:
            _cache.popitem(last=False)
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
    TRANSFERLAB_MEMORY_BUDGET_MB, else half of the memory available now (2 GB when unknown)."""
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
    return available // 2 if available else 2 * 1024 ** 3


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
        self.workers = workers or min(8, 2 * (os.cpu_count() or 2))
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
            reason = _why_unreadable(e)
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
