"""Datasets uploaded as a .zip of class folders: checked, unpacked, listed and deleted.

Each owner (a browser's random token, ui.state.owner_id) has a folder of their own:

    <uploads folder>/<owner>/<dataset>/<class>/<image>      (default <runs folder>/uploads)

The uploads folder must lie inside a data root (core.data), so a dataset unpacked there is
opened and scanned like any folder on the server.

A zip comes from anyone who can open the page, so every member is checked before anything is
written: no absolute paths, no '..', no links or special files, no encrypted members, names
that decode (UTF-8, else the Shift-JIS of Japanese Windows), no name twice, at most so many
files and so many bytes once unpacked (the sizes the zip declares, and again the bytes really
written, since a zip can lie). It is unpacked into a hidden temporary folder beside its
destination and renamed into place in one step, so a refusal or a crash never leaves half a
dataset; nothing is ever written outside the owner's folder. Every refusal is an UploadError
with one sentence saying what to do.

The limits come from the environment (read in `UploadSettings.from_env`, nowhere else):
TRANSFERLAB_MAX_UPLOAD_MB (the .zip, default 200; Streamlit's server.maxUploadSize in
.streamlit/config.toml must be at least as large), TRANSFERLAB_MAX_UNPACKED_MB (default 1000),
TRANSFERLAB_MAX_UPLOAD_FILES (default 20000) and TRANSFERLAB_UPLOADS_DIR (where).
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
from dataclasses import dataclass
from typing import BinaryIO, Callable

from core import data
from core.data import SPLIT_FOLDERS, _is_hidden  # the scan's rule: what it ignores is neither unpacked nor listed
from core.files import TMP_PREFIX, why_unwritable
from core.images import display_name
from core.messages import N_, ConfigError, Explained
from core.runs import default_runs_dir

MAX_UPLOAD_MB_ENV = "TRANSFERLAB_MAX_UPLOAD_MB"
MAX_UNPACKED_MB_ENV = "TRANSFERLAB_MAX_UNPACKED_MB"
MAX_FILES_ENV = "TRANSFERLAB_MAX_UPLOAD_FILES"
UPLOADS_DIR_ENV = "TRANSFERLAB_UPLOADS_DIR"
MB = 1024 ** 2
CHUNK = MB  # bytes copied at a time while unpacking (the cap is checked after each)
UTF8_FLAG = 0x800  # zip general purpose flag: the member's name is UTF-8
ENCRYPTED_FLAG = 0x1
OWNER_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")  # a token, never a path
MAX_NAME_CHARS = 100  # a dataset's folder name, from the zip's name
# Refusals said in more than one place.
TWICE = N_("The zip holds '{name}' twice (two names that are the same once written). Keep one of them and "
           "make the .zip again.")
OUTSIDE = N_("'{name}' in the zip points outside the zip's own folder ('..'): zip the folder itself and upload "
             "again.")


class UploadError(Explained, ValueError):
    """A zip that is not unpacked, or an upload that cannot be deleted, with a sentence saying why."""


class UploadsOff(UploadError):
    """The server's settings leave no uploads folder the scan could read (not the user's doing)."""


@dataclass(frozen=True)
class UploadSettings:
    folder: str                    # where every owner's folder is
    max_upload_mb: int = 200       # the .zip itself
    max_unpacked_mb: int = 1000    # all its files once unpacked
    max_files: int = 20000         # files in it

    @classmethod
    def from_env(cls) -> UploadSettings:
        """The settings from the environment (the defaults where a variable is not set)."""
        defaults = cls(folder="")
        return cls(folder=os.environ.get(UPLOADS_DIR_ENV, "").strip() or os.path.join(default_runs_dir(), "uploads"),
                   max_upload_mb=_positive_int(MAX_UPLOAD_MB_ENV, defaults.max_upload_mb),
                   max_unpacked_mb=_positive_int(MAX_UNPACKED_MB_ENV, defaults.max_unpacked_mb),
                   max_files=_positive_int(MAX_FILES_ENV, defaults.max_files))


def _positive_int(variable: str, default: int) -> int:
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(N_("{variable} must be a whole number of 1 or more, not '{value}'."),
                          variable=variable, value=value)
    return int(value)


# ---------------------------------------------------------------- where an owner's uploads are

def owner_folder(owner: str, settings: UploadSettings) -> str:
    """The real path of the owner's folder (not created here). UploadError for an owner token that
    is not one, or an uploads folder the server may not read datasets from."""
    if not OWNER_PATTERN.fullmatch(str(owner)):
        raise UploadError(N_("This browser's owner token is not valid: open the dashboard's address again."))
    roots = data.data_roots()
    real = data.real_path_within(settings.folder, roots)
    if real is None:
        raise UploadsOff(N_("Uploads are off on this server: their folder {folder} is outside the folders it may "
                            "read ({roots}). Whoever runs it can set TRANSFERLAB_UPLOADS_DIR to a folder inside one "
                            "of them, or add the folder to TRANSFERLAB_DATA_ROOTS."),
                         folder=display_name(os.path.abspath(settings.folder)), roots=", ".join(roots))
    return os.path.join(real, owner)


def list_uploads(owner: str, settings: UploadSettings) -> list[str]:
    """The owner's uploaded dataset folders, by name ([] before the first upload)."""
    folder = owner_folder(owner, settings)
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return []
    # Hidden names cover the temporary folders (TMP_PREFIX) of an unpack or a delete under way.
    return sorted(e.path for e in entries if not _is_hidden(e.name) and e.is_dir(follow_symlinks=False))


def delete_upload(owner: str, path: str, settings: UploadSettings) -> None:
    """Delete one of the owner's uploaded datasets, all at once (renamed away, then removed), and
    nothing else: any path that is not a dataset folder directly in the owner's folder is refused."""
    folder = owner_folder(owner, settings)
    target = os.path.abspath(str(path))
    if os.path.dirname(target) != folder or os.path.islink(target) or not os.path.isdir(target) \
            or os.path.basename(target).startswith("."):
        raise UploadError(N_("{folder} is not one of your uploaded datasets: only those can be deleted here."),
                          folder=display_name(target))
    doomed = tempfile.mkdtemp(prefix=TMP_PREFIX + "deleted-", dir=folder)
    try:
        os.rename(target, os.path.join(doomed, "dataset"))
    except OSError as e:
        os.rmdir(doomed)
        raise UploadError(N_("{folder} could not be deleted ({why})."), folder=display_name(target),
                          why=why_unwritable(e)) from None
    shutil.rmtree(doomed, ignore_errors=True)


# ---------------------------------------------------------------- unpacking

Progress = Callable[[int, int], None]  # (bytes written, bytes to write)


def unpack(zip_file: BinaryIO | str, zip_name: str, owner: str, settings: UploadSettings,
           progress: Progress | None = None) -> str:
    """Check the zip, unpack it into a new dataset folder of the owner's; its path.

    The folder is named after the zip ('pets.zip' -> pets, then 'pets (2)', ...). A single folder
    wrapping everything (what zipping a folder makes) is unwrapped. UploadError when refused."""
    owner_dir = owner_folder(owner, settings)
    _check_zip_size(zip_file, settings)
    try:
        with zipfile.ZipFile(zip_file) as archive:
            members = unwrap(planned_members(archive, settings))
            _check_classes(members)
            os.makedirs(owner_dir, exist_ok=True)
            staging = tempfile.mkdtemp(prefix=TMP_PREFIX, dir=owner_dir)
            try:
                _extract(archive, members, staging, settings, progress)
                return _move_into_place(staging, owner_dir, dataset_name(zip_name))
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
    except UploadError:
        raise
    except OSError as e:
        raise UploadError(N_("The zip could not be unpacked on the server ({why}): free some space or ask whoever "
                             "runs it."), why=why_unwritable(e)) from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError, ValueError):
        # Not a zip, damaged (a CRC that does not match), or a compression Python cannot read.
        raise UploadError(N_("This file is not a zip that can be read (damaged, cut short, or compressed in an "
                             "unusual way). Make the .zip again with your system's 'Compress' command.")) from None


def _check_zip_size(zip_file: BinaryIO | str, settings: UploadSettings) -> None:
    if isinstance(zip_file, str):
        size = os.path.getsize(zip_file)
    else:
        size = zip_file.seek(0, os.SEEK_END)
        zip_file.seek(0)
    if size > settings.max_upload_mb * MB:
        raise UploadError(N_("The zip is {size} MB: uploads may be at most {limit} MB. Upload fewer or smaller "
                             "images."), size=f"{size / MB:.0f}", limit=settings.max_upload_mb)


@dataclass(frozen=True)
class Member:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]  # its path in the dataset, one name per folder level (NFC, checked)


def planned_members(archive: zipfile.ZipFile, settings: UploadSettings) -> list[Member]:
    """The files to unpack, every name checked; hidden files and folders (.DS_Store, __MACOSX) are
    left out, as the scan would leave them out. UploadError for the first member that is refused,
    or for limits the zip's declared sizes already exceed."""
    infos = archive.infolist()
    files = [i for i in infos if not i.is_dir()]
    if len(files) > settings.max_files:
        raise UploadError(N_("The zip holds {n} files: an upload may hold at most {limit}. Upload fewer images."),
                          n=len(files), limit=settings.max_files)
    members, seen, folders = [], {}, set()
    for info in infos:
        parts = member_parts(info)
        if not parts or any(_is_hidden(p) for p in parts):
            continue
        folders.update(parts[:i] for i in range(1, len(parts)))
        if info.is_dir():
            folders.add(parts)
            continue
        if parts in seen:
            raise UploadError(TWICE, name="/".join(parts))
        seen[parts] = info
        members.append(Member(info, parts))
    clash = next((p for p in seen if p in folders), None)
    if clash:
        raise UploadError(TWICE, name="/".join(clash))
    if not members:
        raise UploadError(N_("The zip is empty: put one folder per class in it, each with its images, e.g. "
                             "cats/ and dogs/."))
    declared = sum(m.info.file_size for m in members)
    if declared > settings.max_unpacked_mb * MB:
        raise UploadError(N_("Unpacked, the zip would take {size} MB: an upload may take at most {limit} MB. "
                             "Upload fewer or smaller images."), size=f"{declared / MB:.0f}",
                          limit=settings.max_unpacked_mb)
    return members


def member_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The member's path as folder names, after the checks every name must pass."""
    name = unicodedata.normalize("NFC", member_name(info)).replace("\\", "/")  # macOS writes NFD
    if info.flag_bits & ENCRYPTED_FLAG:
        raise UploadError(N_("'{name}' in the zip is protected by a password: make the .zip again without one."),
                          name=name)
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise UploadError(N_("'{name}' in the zip is a link or a special file, not an image: zip the images "
                             "themselves (without links) and upload again."), name=name)
    if name.startswith("/") or re.match(r"[A-Za-z]:", name):
        raise UploadError(N_("'{name}' in the zip is an absolute path: a zip for upload holds only relative names "
                             "(class folders and their images). Zip the folder itself and upload again."), name=name)
    parts = tuple(p for p in name.split("/") if p not in ("", "."))
    if ".." in parts:
        raise UploadError(OUTSIDE, name=name)
    return parts


def member_name(info: zipfile.ZipInfo) -> str:
    """The member's name as text. Without the UTF-8 flag, zipfile reads it as cp437; most tools
    today write UTF-8 without the flag, and Japanese Windows writes Shift-JIS (cp932)."""
    if info.flag_bits & UTF8_FLAG:
        return info.filename
    raw = info.orig_filename.encode("cp437")
    for encoding in ("utf-8", "cp932"):
        try:
            name = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        # cp932 maps some bytes no Japanese name has to private-use or control characters.
        if not any(unicodedata.category(c) in ("Co", "Cc") for c in name):
            return name
    raise UploadError(N_("A file name in the zip is in an encoding we cannot read ({name}). Make the .zip again "
                         "with a tool that writes UTF-8 names (macOS Finder, 7-Zip, or Windows 11)."),
                      name=info.filename)


def unwrap(members: list[Member]) -> list[Member]:
    """Without the folder(s) that wrap everything ('animals/cats/1.jpg' -> 'cats/1.jpg'): zipping a
    folder puts it around the class folders. A split folder (train/...) is never unwrapped."""
    while len({m.parts[0] for m in members}) == 1 and all(len(m.parts) >= 3 for m in members) \
            and members[0].parts[0].lower() not in SPLIT_FOLDERS:
        members = [Member(m.info, m.parts[1:]) for m in members]
    return members


def _check_classes(members: list[Member]) -> None:
    """At least two class folders (in train/ for a zip with split folders)."""
    top = {m.parts[0] for m in members if len(m.parts) > 1}
    train = next((f for f in top if SPLIT_FOLDERS.get(f.lower()) == "train"), None)
    classes = sorted({m.parts[1] for m in members if m.parts[0] == train and len(m.parts) > 2} if train else top)
    if len(classes) < 2:
        found = ", ".join(f"'{c}'" for c in classes) or "—"
        raise UploadError(N_("The zip has {n} class folders ({found}): a classifier needs at least two. Put each "
                             "class's images in its own folder, e.g. cats/ and dogs/, and zip them together."),
                          n=len(classes), found=found)


def _extract(archive: zipfile.ZipFile, members: list[Member], staging: str, settings: UploadSettings,
             progress: Progress | None) -> None:
    """Write the members under staging, counting the bytes really written against the limit."""
    cap, written = settings.max_unpacked_mb * MB, 0
    total = sum(m.info.file_size for m in members)
    for done, member in enumerate(members, 1):
        target = os.path.join(staging, *member.parts)
        if not data.is_inside(os.path.realpath(os.path.dirname(target)), os.path.realpath(staging)):
            raise UploadError(OUTSIDE, name="/".join(member.parts))  # a second guard: names are checked
        os.makedirs(os.path.dirname(target), exist_ok=True)
        member_written = 0
        with archive.open(member.info) as source, open(target, "xb") as out:
            while chunk := source.read(CHUNK):
                member_written += len(chunk)
                written += len(chunk)
                if written > cap or member_written > member.info.file_size:
                    raise UploadError(N_("Unpacked, the zip would take more than {limit} MB (it declares less): "
                                         "make the .zip again with your system's 'Compress' command."),
                                      limit=settings.max_unpacked_mb)
                out.write(chunk)
        if progress and (done % 64 == 0 or done == len(members)):  # a few hundred updates at most
            progress(written, total)


def dataset_name(zip_name: str) -> str:
    """A folder name for the dataset from the zip's file name: 'Pets 2024.zip' -> 'Pets 2024'."""
    stem = os.path.basename(str(zip_name).replace("\\", "/"))
    stem = re.sub(r"(?i)\.zip$", "", unicodedata.normalize("NFC", stem))
    stem = re.sub(r"[\x00-\x1f/]", "_", stem).strip().lstrip(".")[:MAX_NAME_CHARS].strip()
    return stem or "dataset"


def _move_into_place(staging: str, owner_dir: str, name: str) -> str:
    """Rename the finished staging folder to the first free name (name, 'name (2)', ...)."""
    for n in range(1, 1000):
        target = os.path.join(owner_dir, name if n == 1 else f"{name} ({n})")
        if os.path.lexists(target):
            continue
        try:
            os.rename(staging, target)
        except OSError:  # taken meanwhile (the same owner uploading twice at once)
            if os.path.lexists(target):
                continue
            raise
        return target
    raise UploadError(N_("You have too many datasets named {name}: delete some of them first."), name=name)
