"""Decoded images for training: decoded once into memory within a budget, or streamed from the
files batch by batch, and fed to tf.data without copying.

`load_arrays` decodes a split once (kept in DECODE_CACHE, which counts in the memory budget);
`file_images` is its stand-in when the dataset does not fit; `make_tf_dataset` batches either.
TensorFlow is imported only by the functions that build tf.data pipelines.
"""
from __future__ import annotations

import os
import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from core.data import DatasetError, Skipped
from core.images import available_memory_bytes, decode_workers, load_image, why_unusable
from core.messages import N_, Message

BUDGET_ENV = "TRANSFERLAB_MEMORY_BUDGET_MB"
CHANGED_DURING_TRAINING = N_("{reason} (changed during training: used as a black image)")


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

def memory_budget(megabytes: float | None = None) -> int:
    """Bytes of decoded images a training may hold in memory: `megabytes` if given, else
    TRANSFERLAB_MEMORY_BUDGET_MB, else half of the memory available now (2 GB when unknown).

    The decode cache is part of it: what the cache holds counts as available (it is dropped,
    oldest first, to make room), and the cache itself never holds more than the budget."""
    if megabytes is None and os.environ.get(BUDGET_ENV, "").strip():
        try:
            megabytes = float(os.environ[BUDGET_ENV])
        except ValueError:
            raise DatasetError(N_("{variable} must be a number of megabytes, not '{value}'."),
                               variable=BUDGET_ENV, value=os.environ[BUDGET_ENV]) from None
    if megabytes is not None:
        if megabytes < 0:
            raise DatasetError(N_("The memory budget must be 0 MB or more."))
        return int(megabytes * 1024 ** 2)
    available = available_memory_bytes()
    return (available + DECODE_CACHE.nbytes) // 2 if available else 2 * 1024 ** 3


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
                    self.skipped.append(Skipped(path, Message(CHANGED_DURING_TRAINING, {"reason": reason})))
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


# ---------------------------------------------------------------- one channel

LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # ITU-R 601-2, as PIL's convert("L")


def to_grayscale(rgb: np.ndarray, chunk: int = 1024) -> np.ndarray:
    """uint8 images [..., H, W, 3] -> [..., H, W, 1], converted a chunk at a time (no float copy of all)."""
    rgb = np.asarray(rgb)
    if rgb.ndim == 3:
        return to_grayscale(rgb[None], chunk)[0]
    out = np.empty(rgb.shape[:-1] + (1,), np.uint8)
    for i in range(0, len(rgb), chunk):
        out[i:i + chunk, ..., 0] = np.rint(rgb[i:i + chunk].astype(np.float32) @ LUMA)
    return out


class GrayImages:
    """FileImages seen through to_grayscale: one channel, still decoded batch by batch."""

    dtype = np.dtype(np.uint8)
    nbytes = 0

    def __init__(self, images: FileImages):
        self.images = images

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return self.images.shape[:3] + (1,)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, key) -> np.ndarray:
        return to_grayscale(self.images[key])


def grayscale(images):
    """load_arrays' or file_images' images in one channel."""
    return GrayImages(images) if isinstance(images, FileImages) else to_grayscale(images)


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
