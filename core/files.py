"""Files written safely: JSON written atomically, shared files given the usual permissions, and
why a write failed in words. Used by the run folder (core.runs), exports, prediction CSVs and the
recent-folders list.
"""
from __future__ import annotations

import errno
import json
import os
import tempfile
from contextlib import contextmanager, suppress

from core.messages import Message, N_

TMP_PREFIX = ".tmp-"  # temporary files and folders, renamed into place when complete

WHY_UNWRITABLE = {errno.ENOSPC: N_("the disk is full"), errno.EDQUOT: N_("the disk quota is used up"),
                  errno.EROFS: N_("it is read-only"), errno.ENOENT: N_("it was deleted"),
                  errno.EACCES: N_("permission denied"), errno.EPERM: N_("permission denied")}


def why_unwritable(e: OSError) -> Message | str:
    """'the disk is full', 'it is read-only', 'it was deleted', … for an OSError of a write (a
    Message to put in a sentence); the system's own words, lower-cased, for any other error."""
    known = WHY_UNWRITABLE.get(e.errno)
    return Message(known) if known else str(e.strerror or e).rstrip(".").lower()


def remove_quietly(path: str) -> None:
    """Remove a file if possible (in a folder that just turned read-only, nothing can be)."""
    with suppress(OSError):
        os.unlink(path)


@contextmanager
def atomic_file(path: str, mode: str = "wb", **open_args):
    """Open a temporary file beside `path` for writing; when the block ends without error it is
    synced and renamed to `path`, so readers see the old file or the new one, never half of one.
    On any failure the temporary file is removed and the error raised as it came."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=os.path.splitext(path)[1], dir=folder)
    try:
        with os.fdopen(fd, mode, **open_args) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        remove_quietly(tmp)
        raise


def write_json(path: str, obj) -> None:
    """Write JSON atomically (atomic_file)."""
    with atomic_file(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1, default=jsonable)


def jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def readable_by_all(path: str) -> None:
    """Give path (and everything under it, for a folder) the permissions a plain open() would:
    mkstemp and mkdtemp make owner-only files, and exports and CSVs are meant to be shared."""
    umask = os.umask(0)
    os.umask(umask)
    if os.path.isfile(path):
        os.chmod(path, 0o666 & ~umask)
        return
    for d, _, files in os.walk(path):
        os.chmod(d, 0o777 & ~umask)
        for f in files:
            os.chmod(os.path.join(d, f), 0o666 & ~umask)


def read_json(path: str, default=None):
    """Any JSON file, unchecked: `default` when it is missing or not JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError, RecursionError):
        return default


# A model file is a zip. Keras reads each member whole into memory, so a small file whose members
# claim gigabytes would take them: refuse before opening it. Real .keras files are stored with
# little or no compression (weights do not compress), so their members add up to about the file's
# own size; a modest ratio and an absolute ceiling leave every genuine model through.
MAX_UNPACKED_RATIO = 20
MAX_UNPACKED_BYTES = 4 * 1024 ** 3


def zip_unpacks_too_large(path: str) -> Message | None:
    """Why a zip archive (a .keras model) would unpack to too much, or None when it is reasonable.
    Reads only the archive's directory, never a member; not a zip at all is left to the loader."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            declared = sum(i.file_size for i in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None
    size = os.path.getsize(path)
    if declared > MAX_UNPACKED_BYTES or declared > MAX_UNPACKED_RATIO * size + 64 * 1024 ** 2:
        return Message(N_("it would unpack to {unpacked} GB from a file of {size} MB, more than a model file "
                          "ever does"), {"unpacked": f"{declared / 1e9:,.1f}", "size": f"{size / 1e6:,.1f}"})
    return None
