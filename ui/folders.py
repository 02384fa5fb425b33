"""Which folders the dashboard may read, and the list of recently opened dataset folders.

Pure functions (no Streamlit): the Dataset page calls them, tests call them directly.
"""
from __future__ import annotations

import os

from core import data, images
from core.files import read_json, write_json
from core.messages import N_, Explained, Message
from core.runs import default_runs_dir

RECENT_FILE = "recent_datasets.json"  # kept in the runs folder: the one place the app writes
RECENT_MAX = 10
# Subfolder names of a program, not of a dataset's classes (compared in lower case).
PROGRAM_FOLDERS = {".git", "__pycache__", ".venv", "venv", "node_modules", "site-packages", "app_pages", "assets",
                   "bench", "bin", "build", "core", "dist", "docs", "lib", "runs", "samples", "scripts", "src",
                   "tests", "ui"}

# Where the server may read: core.data owns the rule (the scan and Predict check every file by it).
data_roots = data.data_roots
is_inside = data.is_inside


class FolderNotAllowed(Explained, ValueError):
    """A path outside the data roots the server was started with (its message is translatable:
    the Dataset page shows it with i18n.error_text)."""


def allowed_folder(path: str, roots: list[str] | None = None) -> str:
    """The real absolute path of `path` if it lies under a data root; FolderNotAllowed if not.

    Symlinks and '..' are resolved first, so neither can lead outside the roots.
    """
    roots = data_roots() if roots is None else roots
    if not str(path).strip():
        raise FolderNotAllowed(N_("Type the path of a folder on this server."))
    try:
        real = data.real_path_within(str(path).strip(), roots)
    except (ValueError, OSError) as e:  # e.g. an embedded NUL byte, which no file name can hold
        raise FolderNotAllowed(N_("This is not a valid path on this server ({why})."), why=str(e)) from None
    if real is None:
        shown = images.display_name(os.path.realpath(os.path.expanduser(str(path).strip())))
        raise FolderNotAllowed(
            N_("{folder} is outside the folders this server may read ({roots}). Choose a folder inside "
               "one of them, or restart the app with TRANSFERLAB_DATA_ROOTS set to include it."),
            folder=shown, roots=", ".join(roots))
    return real


def doubts(ds: data.Dataset) -> list[Message]:
    """Why a scanned folder does not look like a dataset (this program's own folder, class folders
    named like a program's, most files unusable); [] when it does. The Dataset page asks before
    using such a folder."""
    reasons = []
    if ds.root == data.APP_FOLDER:
        reasons.append(Message(N_("it is the folder of this program")))
    odd = [c for c in ds.classes if c.lower() in PROGRAM_FOLDERS]
    if odd:
        reasons.append(Message(N_("its subfolders {names} look like a program's folders, not classes"),
                               {"names": ", ".join(odd)}))
    usable = sum(len(items) for items in ds.splits.values())
    if len(ds.skipped) > usable:
        reasons.append(Message(N_("{skipped} of its {total} files cannot be used"),
                               {"skipped": len(ds.skipped), "total": len(ds.skipped) + usable}))
    return reasons


def subfolders(path: str) -> list[str]:
    """Visible subfolder names of path, sorted; [] when it cannot be listed."""
    try:
        return sorted(e.name for e in os.scandir(path)
                      if e.is_dir() and not e.name.startswith((".", "__")))
    except OSError:
        return []


def parent_within_roots(path: str, roots: list[str] | None = None) -> str | None:
    """The parent of path, or None when path is a root (browsing never climbs out)."""
    roots = data_roots() if roots is None else roots
    if path in roots:
        return None
    parent = os.path.dirname(path)
    return parent if any(is_inside(parent, r) for r in roots) else None


def recent_path(runs_dir: str | None = None) -> str:
    return os.path.join(runs_dir or default_runs_dir(), RECENT_FILE)


def _recent_items(runs_dir: str | None) -> list[str]:
    """The paths in the recent-folders file; [] when it is missing or holds anything but a list
    of paths (a damaged file is simply overwritten by the next Open)."""
    items = read_json(recent_path(runs_dir), [])
    return [p for p in items if isinstance(p, str)] if isinstance(items, list) else []


def recent_folders(runs_dir: str | None = None) -> list[str]:
    """Recently opened dataset folders, newest first, only those still allowed and present."""
    out = []
    for p in _recent_items(runs_dir):
        try:
            real = allowed_folder(p)
        except FolderNotAllowed:
            continue
        if os.path.isdir(real) and real not in out:
            out.append(real)
    return out


def remember_folder(path: str, runs_dir: str | None = None) -> None:
    """Put path first in the recent list (best effort: a read-only runs folder is not an error)."""
    runs_dir = runs_dir or default_runs_dir()
    items = [path] + [p for p in _recent_items(runs_dir) if p != path]
    try:
        os.makedirs(runs_dir, exist_ok=True)
        write_json(recent_path(runs_dir), items[:RECENT_MAX])
    except OSError:
        pass
