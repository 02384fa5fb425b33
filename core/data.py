"""Dataset folders: list and check every file up front, name the classes, split.

Two layouts are read:
  DIR/{train,validation|val,test}/CLASS/*   (split folders)
  DIR/CLASS/*                               (then a seeded, stratified split)

Every file is checked (core.images decodes each one) before any training starts; the ones that
cannot be used are listed in `Dataset.skipped` with a reason a person understands. Nothing is
ever written into DIR. Decoding the usable files for training is core.pipeline's.

Paths: every file listed, read or trained on resolves (links followed) inside the folders it may
come from: its class folder, and the data roots (`within`). `real_path_within` is the one check;
the dashboard's typed paths, the scan and the Predict folder all go through it.

Sentences (errors, skip reasons, warnings, the summary) are core.messages Messages: English
where printed, translated by the dashboard.
"""
from __future__ import annotations

import os
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from core.images import check_file, decode_workers, display_name
from core.messages import N_, Explained, Message
from core.sample import default_samples_dir

SPLIT_FOLDERS = {"train": "train", "validation": "validation", "val": "validation", "test": "test"}
SPLITS = ("train", "validation", "test")
ROOTS_ENV = "TRANSFERLAB_DATA_ROOTS"
# Why a file or folder is left out of a dataset (skip reasons without details: plain sentences).
OUTSIDE_CLASS = N_("link leads outside its class folder")
OUTSIDE_ROOTS = N_("link leads outside the folders this server may read")
LINK_INSIDE = N_("link to another folder of this dataset (its files are listed there)")
NOT_IN_CLASS = N_("not inside a class folder")
FOLDER_UNREADABLE = N_("folder cannot be read ({error})")


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


# ---------------------------------------------------------------- what a scan finds

class DatasetError(Explained, ValueError):
    """A dataset that cannot be trained on, with a sentence saying what to do."""


@dataclass
class Skipped:
    path: str
    reason: Message | str  # a Message, or a plain English sentence marked with N_

    def record(self) -> dict:
        """As skipped.json stores it: the path and the reason in English."""
        return {"path": self.path, "reason": str(self.reason)}


@dataclass
class Dataset:
    root: str
    layout: str  # "split" (train/validation/test folders) or "flat" (class folders, split by us)
    classes: list[str]
    splits: dict[str, list[tuple[str, int]]]  # split -> [(path, label)]
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[Message] = field(default_factory=list)
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

    def summary(self) -> Message:
        """'2 classes (cats, dogs); train 80, validation 20; 1 skipped'."""
        n = {split: len(self.splits.get(split, ())) for split in SPLITS}
        counts = Message(SPLIT_COUNTS[bool(n["validation"]), bool(n["test"])], n)
        return Message(N_("{n_classes} classes ({names}); {counts}; {n_skipped} skipped"),
                       {"n_classes": len(self.classes), "names": ", ".join(self.classes),
                        "counts": counts, "n_skipped": len(self.skipped)})


# The images per split in Dataset.summary, by (has validation, has test); train always has some.
SPLIT_COUNTS = {
    (False, False): N_("train {train}"),
    (True, False): N_("train {train}, validation {validation}"),
    (False, True): N_("train {train}, test {test}"),
    (True, True): N_("train {train}, validation {validation}, test {test}"),
}


# ---------------------------------------------------------------- scanning folders

def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name.startswith("__MACOSX") or name == "Thumbs.db"


def list_images(folder: str, skipped: list[Skipped] | None = None, within: list[str] | None = None,
                outside: Message | str = OUTSIDE_CLASS) -> list[str]:
    """Every non-hidden file under folder (subfolders too, links followed), each real file once.

    A file or subfolder whose link leads outside the real `within` folders (default: folder
    itself) is not listed, and goes to `skipped` with the reason `outside`, as do folders that
    cannot be listed. A link back into a folder already listed (a loop) is not followed again.
    """
    within = within or [os.path.realpath(folder)]
    out, seen_folders, seen_files = [], set(), set()

    def skip(path: str, reason: Message | str) -> None:
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
            skip(here, Message(FOLDER_UNREADABLE, {"error": e.strerror or str(e)}))
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
            skipped.append(Skipped(path, LINK_INSIDE))
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


# A class of the validation or test folder that train does not have.
NOT_IN_TRAIN = {
    "validation": N_("Class '{name}' of the validation folder is not in train; its {n} images were ignored."),
    "test": N_("Class '{name}' of the test folder is not in train; its {n} images were ignored."),
}


def _too_few_classes(shown: str, class_folders: list[str]) -> None:
    """The DatasetError of a folder with fewer than two usable classes, naming what was found."""
    if not class_folders:
        raise DatasetError(N_("Need at least two class folders with usable images in {folder} (found none). "
                              "Put each class's images in its own subfolder, e.g. {folder}/cats/*.jpg and "
                              "{folder}/dogs/*.jpg."), folder=shown)
    raise DatasetError(N_("Need at least two class folders with usable images in {folder} (found {found}). "
                          "Put each class's images in its own subfolder, e.g. {folder}/cats/*.jpg and "
                          "{folder}/dogs/*.jpg."),
                       folder=shown, found=", ".join(f"'{display_name(c)}'" for c in class_folders))


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
        raise DatasetError(N_("Folder not found: {folder}"), folder=shown)
    if not os.path.isdir(root):
        raise DatasetError(N_("Not a folder: {folder}"), folder=shown)
    if not os.access(root, os.R_OK | os.X_OK):
        raise DatasetError(N_("Folder cannot be read (permission denied): {folder}"), folder=shown)
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise DatasetError(N_("Split fractions must be between 0 and 1 and add up to less than 1."))
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
            warnings.append(Message(N_("Folder '{name}' ignored: with split folders, only train, "
                                       "validation (or val) and test are read."), {"name": display_name(other)}))
        for split, name in split_dirs.items():
            folder = os.path.join(root, name)
            raw[split] = list_classes(folder)
            skipped += [Skipped(p, NOT_IN_CLASS) for p in _stray_files(folder)]
    else:
        layout = "flat"
        raw["all"] = list_classes(root)
    skipped += [Skipped(p, NOT_IN_CLASS) for p in _stray_files(root)]

    # Check every file once, in parallel (PIL releases the GIL while decoding).
    all_files = sorted({p for per_class in raw.values() for files in per_class.values() for p in files})
    checks = {}
    with ThreadPoolExecutor(workers or decode_workers()) as pool:
        for done, (path, check) in enumerate(zip(all_files, pool.map(check_file, all_files)), 1):
            checks[path] = check
            if progress and (done % 256 == 0 or done == len(all_files)):
                progress(done, len(all_files))
    sizes = {p: s for p, (reason, s) in checks.items() if reason is None}
    skipped += [Skipped(p, reason) for p, (reason, _) in checks.items() if reason is not None]

    source = raw.get("train", raw.get("all", {}))
    usable = {c: [p for p in files if p in sizes] for c, files in source.items()}
    unreadable = {os.path.realpath(s.path): s.reason for s in skipped
                  if isinstance(s.reason, Message) and s.reason.msgid == FOLDER_UNREADABLE}
    for c, files in usable.items():
        why = unreadable.get(os.path.realpath(os.path.join(root, split_dirs.get("train", ""), c)))
        name = {"name": display_name(c)}
        if not source[c] and why:
            warnings.append(Message(N_("Class folder '{name}' was ignored: its {reason}."), {**name, "reason": why}))
        elif not source[c]:
            warnings.append(Message(N_("Class folder '{name}' is empty and was ignored."), name))
        elif not files:
            warnings.append(Message(N_("Class folder '{name}' has no usable image and was ignored."), name))
    class_folders = [c for c, files in usable.items() if files]
    if len(class_folders) < 2:
        _too_few_classes(shown, class_folders)
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
                        warnings.append(Message(NOT_IN_TRAIN[split], {"name": display_name(c), "n": len(good)}))
                    continue
                items += [(p, index[c]) for p in good]
            splits[split] = items
        if not splits["validation"]:
            # No validation folder: carve one out of train, stratified and seeded.
            carved = _stratified_split(splits["train"], len(class_folders), val_fraction or 0.15, 0, seed)
            splits["train"], splits["validation"] = carved["train"], carved["validation"]
            warnings.append(Message(N_("No validation folder: a stratified share of train is used for validation.")))
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


def per_class_subset(items: list[tuple[str, int]], n: int, seed: int) -> list[tuple[str, int]]:
    """At most n (path, label) items of each label, drawn with `seed` (the same seed, the same
    images), in their original order: "train on N images per class"."""
    picked = set()
    for label in sorted({lab for _, lab in items}):
        indices = [i for i, (_, lab) in enumerate(items) if lab == label]
        picked.update(random.Random(f"{seed}:{label}").sample(indices, min(n, len(indices))))
    return [item for i, item in enumerate(items) if i in picked]
