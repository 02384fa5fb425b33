"""Datasets uploaded as a .zip (core.uploads): every unsafe or unusable zip is refused with a
sentence and leaves the file system as it was; a good one unpacks into the owner's folder and
scans like any dataset; an owner deletes only their own uploads; the Dataset page's uploader."""
from __future__ import annotations

import io
import os
import stat
import unicodedata
import warnings
import zipfile

import pytest
import streamlit as st
from PIL import Image

from core import data, uploads
from core.messages import ConfigError
from core.uploads import UploadError, UploadSettings

OWNER, OTHER = "a1b2c3", "d4e5f6"


def png(color=(200, 30, 30), size=(12, 10)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "PNG")
    return buf.getvalue()


def zip_bytes(members, compression=zipfile.ZIP_STORED) -> bytes:
    """A zip of (name or ZipInfo, content) pairs, written as given (duplicates too)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns on a duplicate name: that is the point
        with zipfile.ZipFile(buf, "w", compression) as z:
            for name, content in members:
                z.writestr(name, content)
    return buf.getvalue()


def two_classes(prefix="") -> list:
    return [(f"{prefix}{c}/{i}.png", png((40 * i, 100 if c == "cats" else 10, 50))) for c in ("cats", "dogs")
            for i in range(4)]


def raw_name(zipped: bytes, placeholder: str, raw: bytes) -> bytes:
    """The zip with a member's (ASCII) name replaced by raw bytes, no UTF-8 flag: as old tools and
    Japanese Windows write names."""
    assert len(placeholder) == len(raw)
    return zipped.replace(placeholder.encode("ascii"), raw)


@pytest.fixture
def setup(tmp_path, monkeypatch):
    """A data root (with the uploads folder in it), a folder outside it, small limits."""
    root = tmp_path / "data"
    (root / "mine").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("TRANSFERLAB_DATA_ROOTS", str(root))
    monkeypatch.setenv("TRANSFERLAB_SAMPLES_DIR", str(tmp_path / "samples"))
    settings = UploadSettings(folder=str(root / "uploads"), max_upload_mb=2, max_unpacked_mb=1, max_files=20)
    return tmp_path, settings


def tree(folder) -> set[str]:
    """Every file and folder under folder, relative."""
    return {os.path.relpath(os.path.join(d, n), folder) for d, dirs, files in os.walk(folder) for n in dirs + files}


def unpack(settings, content: bytes, name="pets.zip", owner=OWNER):
    return uploads.unpack(io.BytesIO(content), name, owner, settings)


def symlink_member(name: str, target: str):
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix: the mode in external_attr counts
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info, target


def lying_sizes(zipped: bytes) -> bytes:
    """The zip with its central directory declaring 10 bytes for every member (a zip bomb's trick)."""
    out, start = bytearray(zipped), 0
    while (i := out.find(b"PK\x01\x02", start)) >= 0:
        out[i + 24:i + 28] = (10).to_bytes(4, "little")
        start = i + 4
    return bytes(out)


def encrypted(zipped: bytes) -> bytes:
    """The zip with every member marked as encrypted (flag bit 0 in its central directory entry)."""
    out, start = bytearray(zipped), 0
    while (i := out.find(b"PK\x01\x02", start)) >= 0:
        out[i + 8] |= 0x1
        start = i + 4
    return bytes(out)


REFUSED = {
    "traversal": ([("../evil.png", png())] + two_classes(), "outside the zip's own folder"),
    "traversal inside": ([("cats/../../evil.png", png())] + two_classes(), "outside the zip's own folder"),
    "traversal, backslashes": ([("..\\..\\evil.png", png())] + two_classes(), "outside the zip's own folder"),
    "absolute path": ([("/tmp/evil.png", png())] + two_classes(), "absolute path"),
    "drive letter": ([("C:/evil.png", png())] + two_classes(), "absolute path"),
    "symlink member": ([symlink_member("cats/passwd.png", "/etc/passwd")] + two_classes(), "link or a special file"),
    "bomb": ([("cats/zeros.png", bytes(3 * 1024 ** 2))] + two_classes(), "would take 3 MB"),
    "too many files": ([(f"cats/{i}.png", png()) for i in range(21)] + two_classes(), "holds 29 files"),
    "duplicate": (two_classes() + [("cats/1.png", png())], "'cats/1.png' twice"),
    "duplicate after normalization": (two_classes() + [(unicodedata.normalize("NFD", "cats/ガ.png"), png()),
                                                       ("cats/ガ.png", png())], "'cats/ガ.png' twice"),
    "file and folder of one name": (two_classes() + [("cats/1.png/x.png", png())], "'cats/1.png' twice"),
    "empty": ([], "The zip is empty"),
    "only hidden files": ([("__MACOSX/._a.png", b"x"), (".DS_Store", b"x")], "The zip is empty"),
    "one class": ([(f"cats/{i}.png", png()) for i in range(3)], "1 class folders ('cats')"),
    "one class, wrapped": ([(f"animals/cats/{i}.png", png()) for i in range(3)], "1 class folders ('cats')"),
    "no class folder": ([(f"{i}.png", png()) for i in range(3)], "0 class folders"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_unsafe_or_unusable_zips_are_refused_and_write_nothing(setup, case):
    tmp_path, settings = setup
    members, sentence = REFUSED[case]
    compression = zipfile.ZIP_DEFLATED if case == "bomb" else zipfile.ZIP_STORED
    before = tree(tmp_path)
    with pytest.raises(UploadError, match=sentence.replace("(", r"\(").replace(")", r"\)")):
        unpack(settings, zip_bytes(members, compression))
    assert tree(tmp_path) == before  # not even the uploads folder


@pytest.mark.parametrize("content", [b"not a zip at all", b"", zip_bytes(two_classes())[:-40],
                                     lying_sizes(zip_bytes(two_classes(), zipfile.ZIP_DEFLATED))],
                         ids=["text", "empty file", "cut short", "declared sizes lie"])
def test_a_bad_zip_is_refused_with_a_sentence_and_leaves_no_partial_folder(setup, content):
    tmp_path, settings = setup
    before = tree(tmp_path)
    with pytest.raises(UploadError, match="not a zip that can be read"):
        unpack(settings, content)
    # A zip whose members fail while unpacking leaves at most the (empty) owner's folder.
    assert tree(tmp_path) - before <= {"data/uploads", f"data/uploads/{OWNER}"}
    assert not os.listdir(settings.folder + f"/{OWNER}") if os.path.isdir(settings.folder + f"/{OWNER}") else True


def test_bytes_written_are_capped_even_when_the_declared_sizes_pass(setup, monkeypatch):
    """The cap while unpacking, for a zip whose declared sizes passed the check before it."""
    tmp_path, settings = setup
    settings = UploadSettings(settings.folder, max_upload_mb=100, max_unpacked_mb=1)
    monkeypatch.setattr(uploads, "MB", 1000)  # the 1 MB limit is now 1000 bytes...
    real_plan = uploads.planned_members       # ...and the declared sizes pass the check before unpacking
    monkeypatch.setattr(uploads, "planned_members",
                        lambda archive, s: real_plan(archive, UploadSettings(s.folder, max_unpacked_mb=10 ** 6)))
    with pytest.raises(UploadError, match="more than 1 MB"):
        unpack(settings, zip_bytes(two_classes() + [("cats/noise.png", os.urandom(5000))]))
    assert os.listdir(os.path.join(settings.folder, OWNER)) == []


def test_a_password_protected_zip_is_refused(setup):
    tmp_path, settings = setup
    with pytest.raises(UploadError, match="protected by a password"):
        unpack(settings, encrypted(zip_bytes(two_classes())))
    assert not os.path.exists(settings.folder)


def test_a_zip_over_the_upload_limit_is_refused(setup):
    tmp_path, settings = setup
    big = zip_bytes(two_classes() + [("cats/noise.png", os.urandom(3 * 1024 ** 2))])
    with pytest.raises(UploadError, match="uploads may be at most 2 MB"):
        unpack(settings, big)
    assert not os.path.exists(settings.folder)


def test_a_name_in_no_encoding_we_read_is_refused(setup):
    tmp_path, settings = setup
    with pytest.raises(UploadError, match="encoding we cannot read"):
        unpack(settings, raw_name(zip_bytes(two_classes() + [("cats/XX.png", png())]), "XX.png", b"\xff\xff.png"))
    assert not os.path.exists(settings.folder)


def test_a_good_zip_unpacks_into_the_owners_folder_and_scans(setup):
    tmp_path, settings = setup
    members = two_classes("My pets/") + [("My pets/cats/ねこ.png", png((9, 9, 9))),
                                          ("My pets/dogs/SJIS.png", png((1, 2, 3))),
                                          ("__MACOSX/My pets/cats/._1.png", b"junk"), ("My pets/.DS_Store", b"junk")]
    content = raw_name(zip_bytes(members), "SJIS", "いぬ".encode("cp932"))  # Japanese Windows, no UTF-8 flag
    path = unpack(settings, content, name="ペット.zip")

    assert path == os.path.join(os.path.realpath(settings.folder), OWNER, "ペット")
    assert sorted(os.listdir(path)) == ["cats", "dogs"]  # the wrapping folder and the junk are gone
    assert "ねこ.png" in os.listdir(os.path.join(path, "cats"))
    assert "いぬ.png" in os.listdir(os.path.join(path, "dogs"))
    ds = data.scan(path, within=data.data_roots())
    assert ds.classes == ["cats", "dogs"] and not ds.skipped
    assert sum(len(items) for items in ds.splits.values()) == 10
    # Nothing but the dataset in the owner's folder (no temporary folder left), nothing elsewhere.
    assert os.listdir(os.path.dirname(path)) == ["ペット"]
    assert uploads.list_uploads(OWNER, settings) == [path]
    assert uploads.list_uploads(OTHER, settings) == []
    # The same name again: a second folder, the first untouched.
    assert unpack(settings, content, name="ペット.zip") == path + " (2)"


def test_split_folders_are_kept_and_read_as_splits(setup):
    tmp_path, settings = setup
    members = two_classes("ds/train/") + two_classes("ds/validation/")
    path = unpack(settings, zip_bytes(members))
    assert sorted(os.listdir(path)) == ["train", "validation"]
    assert data.scan(path, within=data.data_roots()).layout == "split"


def test_delete_only_the_owners_own_uploads(setup):
    tmp_path, settings = setup
    mine = unpack(settings, zip_bytes(two_classes()), owner=OWNER)
    theirs = unpack(settings, zip_bytes(two_classes()), owner=OTHER)
    owner_dir = os.path.dirname(mine)
    os.symlink(theirs, os.path.join(owner_dir, "link"))
    not_mine = [theirs, os.path.join(owner_dir, "..", OTHER, "pets"), owner_dir, settings.folder,
                os.path.join(owner_dir, "link"), str(tmp_path / "data" / "mine"), os.path.join(owner_dir, "missing")]
    for path in not_mine:
        with pytest.raises(UploadError, match="not one of your uploaded datasets"):
            uploads.delete_upload(OWNER, path, settings)
    assert os.path.isdir(theirs) and os.path.isdir(tmp_path / "data" / "mine")

    uploads.delete_upload(OWNER, mine, settings)
    assert not os.path.exists(mine) and os.listdir(owner_dir) == ["link"]
    assert uploads.list_uploads(OWNER, settings) == []  # a link is not an upload
    assert uploads.list_uploads(OTHER, settings) == [theirs]


@pytest.mark.parametrize("owner", ["", "../d4e5f6", "a/b", "x" * 65])
def test_an_owner_token_is_never_a_path(setup, owner):
    tmp_path, settings = setup
    with pytest.raises(UploadError, match="owner token is not valid"):
        unpack(settings, zip_bytes(two_classes()), owner=owner)
    assert not os.path.exists(settings.folder)


def test_an_uploads_folder_outside_the_data_roots_turns_uploads_off(setup):
    tmp_path, settings = setup
    outside = UploadSettings(folder=str(tmp_path / "elsewhere" / "uploads"))
    with pytest.raises(UploadError, match="TRANSFERLAB_UPLOADS_DIR"):
        unpack(outside, zip_bytes(two_classes()))
    assert not os.path.exists(outside.folder)


def test_limits_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_RUNS_DIR", str(tmp_path / "runs"))
    for variable in ("TRANSFERLAB_MAX_UPLOAD_MB", "TRANSFERLAB_MAX_UNPACKED_MB", "TRANSFERLAB_MAX_UPLOAD_FILES",
                     "TRANSFERLAB_UPLOADS_DIR"):
        monkeypatch.delenv(variable, raising=False)
    assert UploadSettings.from_env() == UploadSettings(str(tmp_path / "runs" / "uploads"), 200, 1000, 20000)
    monkeypatch.setenv("TRANSFERLAB_MAX_UPLOAD_MB", "50")
    assert UploadSettings.from_env().max_upload_mb == 50
    monkeypatch.setenv("TRANSFERLAB_MAX_UPLOAD_FILES", "lots")
    with pytest.raises(ConfigError, match="TRANSFERLAB_MAX_UPLOAD_FILES must be a whole number"):
        UploadSettings.from_env()


# ---------------------------------------------------------------- the Dataset page

@pytest.fixture
def page(tmp_path, samples_dir, monkeypatch):
    from apptest_helpers import isolate_app

    data_root = tmp_path / "data"
    data_root.mkdir()
    isolate_app(monkeypatch, tmp_path / "runs", data_root, samples_dir)
    monkeypatch.setenv("TRANSFERLAB_UPLOADS_DIR", str(data_root / "uploads"))
    yield data_root / "uploads"
    st.cache_data.clear()
    st.cache_resource.clear()


def test_uploading_on_the_dataset_page_opens_the_dataset_and_delete_asks_first(page):
    from apptest_helpers import assert_clean, open_app, texts
    from ui import state

    at = open_app("dataset")
    assert at.file_uploader(key="dataset_zip").proto.max_upload_size_mb == 200  # what the browser enforces
    at.file_uploader(key="dataset_zip").upload("pets.zip", zip_bytes(two_classes("pets/")), "application/zip")
    at.run()
    assert_clean(at)
    owner = at.session_state[state.OWNER]
    path = os.path.join(str(page), owner, "pets")
    assert at.session_state["dataset_path"] == path
    assert "Classes: cats, dogs" in texts(at)
    assert [m.label for m in at.metric][:1] == ["Classes"] and at.metric[0].value == "2"

    at.button(key="upload_delete_pets").click().run()
    assert os.path.isdir(path)  # not yet: it asks first
    assert any("cannot be undone" in w.value for w in at.warning)
    at.button(key="upload_delete_yes").click().run()
    assert_clean(at)
    assert not os.path.exists(path)
    assert at.session_state["dataset_path"] != path  # back to the sample
    assert "None yet." in texts(at)


def test_a_refused_upload_shows_its_sentence_on_the_dataset_page(page):
    from apptest_helpers import assert_clean, open_app

    at = open_app("dataset")
    at.file_uploader(key="dataset_zip").upload("evil.zip", zip_bytes([("../evil.png", png())] + two_classes()),
                                                "application/zip")
    at.run()
    assert_clean(at)
    assert any("outside the zip's own folder" in e.value for e in at.error)
    assert not os.path.exists(page)


def test_with_the_uploads_folder_outside_the_data_roots_the_page_says_so_and_works(page, monkeypatch, tmp_path):
    from apptest_helpers import assert_clean, open_app

    monkeypatch.delenv("TRANSFERLAB_UPLOADS_DIR")  # <runs>/uploads, and the runs folder is not in a data root
    at = open_app("dataset")
    assert_clean(at)
    assert not at.error and not at.file_uploader
    assert any("Uploads are off on this server" in i.value for i in at.info)
    assert at.metric[0].label == "Classes"  # the sample, scanned as before


def test_the_image_uploaders_still_take_one_image_not_a_dataset(page):
    """server.maxUploadSize is a dataset's 200 MB now; the Augment page's uploader asks for 20 MB."""
    from apptest_helpers import open_app

    at = open_app("augment")
    at.radio(key="aug_source").set_value("Upload one").run()
    assert at.file_uploader(key="aug_upload").proto.max_upload_size_mb == 20


def test_the_upload_panel_reads_in_japanese(page):
    from apptest_helpers import assert_clean, open_app

    at = open_app()
    at.query_params["lang"] = "ja"
    at.switch_page("app_pages/dataset.py").run()
    at.file_uploader(key="dataset_zip").upload("pets.zip", zip_bytes(two_classes()), "application/zip")
    at.run()
    assert_clean(at)
    assert at.session_state["dataset_path"].endswith("pets")
