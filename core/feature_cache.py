"""Base features kept on disk across runs: a second run on the same images and base skips computing them.

What the frozen part of a transfer model outputs for an image (core.features: the pooled features
for feature extraction, the tensors entering the unfrozen layers for fine-tuning) depends only on
the image's content, the frozen layers and their weights, the image size and the resize mode. Each
split's outputs are stored once under <runs>/.cache/features/, keyed by exactly those:

- the images by CONTENT: a hash of each file's bytes (remembered by path, size and modification
  time in files.json, so an unchanged file is not read twice; a file changed in place is re-hashed);
- the frozen part by a hash of its weights and the shapes it outputs, which covers the base, its
  weights file (or seed, without pretrained weights) and fine-tuning's cut point;
- the image size and resize mode.

Only the un-augmented view is cached: augmented views are drawn at random, so they are computed
every run. An entry carries a checksum of its arrays; a truncated, malformed or mismatched entry is
deleted and recomputed, never trusted. Entries are written atomically (core.files) and the cache
holds at most TRANSFERLAB_FEATURE_CACHE_MB (default 2048) MB, least recently used entries evicted
first. A cache that cannot be read or written never fails a training: it is logged, and the
features are computed as without a cache.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass

import numpy as np

from core import files
from core.messages import N_

LIMIT_ENV = "TRANSFERLAB_FEATURE_CACHE_MB"
DEFAULT_LIMIT_MB = 2048
SUBFOLDER = os.path.join(".cache", "features")
ENTRY_SUFFIX = ".npz"
HASH_INDEX = "files.json"
FORMAT = 1  # bump when an entry's layout changes: older entries then simply miss


def cache_dir(runs_dir: str) -> str:
    return os.path.join(runs_dir, SUBFOLDER)


def limit_bytes() -> int:
    """TRANSFERLAB_FEATURE_CACHE_MB in bytes (0 turns the cache off); the default for an unusable value."""
    try:
        megabytes = float(os.environ.get(LIMIT_ENV, "") or DEFAULT_LIMIT_MB)
    except ValueError:
        megabytes = DEFAULT_LIMIT_MB
    return max(0, int(megabytes * 1024 ** 2))


@dataclass(frozen=True)
class Usage:
    entries: int
    bytes: int


def _entries(folder: str) -> list[os.DirEntry]:
    try:
        return [e for e in os.scandir(folder) if e.name.endswith(ENTRY_SUFFIX) and e.is_file()]
    except OSError:
        return []


def usage(runs_dir: str) -> Usage:
    """How many entries the cache of this runs folder holds, and their size."""
    entries = _entries(cache_dir(runs_dir))
    return Usage(len(entries), sum(_size(e) for e in entries))


def _size(entry: os.DirEntry) -> int:
    try:
        return entry.stat().st_size
    except OSError:
        return 0


def clear(runs_dir: str) -> Usage:
    """Empty the cache (entries and remembered file hashes); returns what it held. Never touches a run."""
    held = usage(runs_dir)
    shutil.rmtree(cache_dir(runs_dir), ignore_errors=True)
    return held


def file_hash(path: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fingerprint(arrays, *facts) -> str:
    """A hash of arrays (e.g. a model's weights) and of any JSON-able facts beside them."""
    h = hashlib.blake2b(digest_size=16)
    h.update(json.dumps(facts, sort_keys=True, default=str).encode())
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class FeatureCache:
    """The feature cache of one runs folder, for one training. `log(msgid, **params)` reports what
    went wrong (the job's log); nothing here raises into the training."""

    def __init__(self, runs_dir: str, log=None, limit: int | None = None):
        self.folder = cache_dir(runs_dir)
        self.limit = limit_bytes() if limit is None else limit
        self._log = log or (lambda msgid, **params: None)
        self._index: dict | None = None  # files.json: real path -> [size, mtime_ns, hash]

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    # -- keys
    def content_hashes(self, paths: list[str]) -> list[str]:
        """The hash of each file's bytes; re-read only when its size or modification time changed."""
        if self._index is None:
            index = files.read_json(os.path.join(self.folder, HASH_INDEX), {})
            self._index = index if isinstance(index, dict) else {}
        hashes, changed = [], False
        for path in paths:
            st = os.stat(path)
            known = self._index.get(path)
            if isinstance(known, list) and known[:2] == [st.st_size, st.st_mtime_ns]:
                hashes.append(known[2])
                continue
            hashes.append(file_hash(path))
            self._index[path] = [st.st_size, st.st_mtime_ns, hashes[-1]]
            changed = True
        if changed:
            self._write(lambda: files.write_json(os.path.join(self.folder, HASH_INDEX), self._index))
        return hashes

    def key(self, paths: list[str], model_id: str, image_size: int, resize: str) -> str | None:
        """The entry's name for these images through this frozen part; None when the files
        cannot be read (the training then reports them as it always does)."""
        if not self.enabled:
            return None
        try:
            hashes = self.content_hashes(paths)
        except OSError:
            return None
        return fingerprint([], FORMAT, hashes, model_id, image_size, resize)

    # -- entries
    def _path(self, key: str) -> str:
        return os.path.join(self.folder, key + ENTRY_SUFFIX)

    def load(self, key: str | None, n: int) -> list[np.ndarray] | None:
        """The arrays stored under key (n rows each), or None. A damaged entry is deleted."""
        if key is None:
            return None
        path = self._path(key)
        if not os.path.exists(path):
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                meta = json.loads(str(z["meta"]))
                arrays = [z[f"out{i}"] for i in range(meta["outputs"])]
            if meta.get("key") != key or any(len(a) != n for a in arrays) or meta.get("checksum") != fingerprint(arrays):
                raise ValueError("checksum or shape mismatch")
        except Exception as e:  # noqa: BLE001  truncated, not a zip, wrong content: never trusted
            self._log(N_("A feature cache entry was damaged ({why}): computing the features again."),
                      why=f"{type(e).__name__}: {e}")
            files.remove_quietly(path)
            return None
        try:
            os.utime(path)  # most recently used: evicted last
        except OSError:
            pass
        return arrays

    def save(self, key: str | None, arrays: list[np.ndarray]) -> bool:
        """Store arrays under key, then evict the least recently used entries over the limit."""
        if key is None:
            return False
        size = sum(a.nbytes for a in arrays)
        if size > self.limit:
            self._log(N_("The features take {mb} MB, more than the feature cache's limit of {limit} MB ({variable}): "
                         "not cached."), mb=f"{size / 1e6:,.0f}", limit=f"{self.limit / 1024 ** 2:,.0f}",
                      variable=LIMIT_ENV)
            return False
        meta = json.dumps({"key": key, "outputs": len(arrays), "checksum": fingerprint(arrays)})

        def write():
            with files.atomic_file(self._path(key)) as f:
                np.savez(f, meta=np.array(meta), **{f"out{i}": a for i, a in enumerate(arrays)})

        return self._write(write) and self._write(lambda: self._evict(keep=self._path(key)))

    def _write(self, write) -> bool:
        try:
            os.makedirs(self.folder, exist_ok=True)
            write()
            return True
        except OSError as e:
            self._log(N_("The feature cache could not be written ({why}): this training goes on without it."),
                      why=files.why_unwritable(e))
            return False

    def _evict(self, keep: str) -> None:
        """Remove the least recently used entries until the cache fits its limit (never `keep`)."""
        entries = sorted(_entries(self.folder), key=lambda e: e.stat().st_mtime_ns)  # OSError: see _write
        total = sum(_size(e) for e in entries)
        for entry in entries:
            if total <= self.limit:
                break
            if entry.path != keep:
                total -= _size(entry)
                files.remove_quietly(entry.path)
