"""core.data: layouts, splits, the skip report, conversion of every image mode, decoding once."""
from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from conftest import jpeg_bytes, save_image
from core import data, images, pipeline


def test_flat_layout_is_split_stratified_and_seeded(shapes):
    ds = data.scan(shapes, val_fraction=0.25, test_fraction=0.25, seed=3)
    assert ds.layout == "flat" and ds.classes == ["circle", "square", "triangle"]
    counts = ds.counts()
    assert all(counts[s][c] == 3 for s in ("validation", "test") for c in ds.classes)
    assert all(counts["train"][c] == 6 for c in ds.classes)
    again = data.scan(shapes, val_fraction=0.25, test_fraction=0.25, seed=3)
    other = data.scan(shapes, val_fraction=0.25, test_fraction=0.25, seed=4)
    assert again.splits == ds.splits
    assert other.splits["test"] != ds.splits["test"]
    every = [p for s in data.SPLITS for p, _ in ds.splits[s]]
    assert len(every) == len(set(every)) == 36


def test_split_layout_with_val_folder_name(split_shapes):
    os.rename(os.path.join(split_shapes, "validation"), os.path.join(split_shapes, "val"))
    ds = data.scan(split_shapes)
    assert ds.layout == "split" and ds.has_test
    assert {s: len(v) for s, v in ds.splits.items()} == {"train": 32, "validation": 12, "test": 12}


def test_split_layout_without_validation_carves_it_from_train(split_shapes):
    import shutil

    shutil.rmtree(os.path.join(split_shapes, "validation"))
    ds = data.scan(split_shapes, val_fraction=0.25)
    assert len(ds.splits["validation"]) == 8 and len(ds.splits["train"]) == 24
    assert any("No validation folder" in str(w) for w in ds.warnings)


def _corpus(root):
    """One class folder full of awkward files; returns {name: expected 'use' or reason fragment}."""
    cls = os.path.join(root, "odd")
    os.makedirs(cls)
    expect = {}

    def add(name, how, writer):
        writer(os.path.join(cls, name))
        expect[name] = how

    add("empty.jpg", "empty file", lambda p: open(p, "wb").close())
    add("text.jpg", "not an image", lambda p: open(p, "w").write("hello, I am not a photo"))
    add("truncated.jpg", "truncated or corrupt", lambda p: open(p, "wb").write(jpeg_bytes((64, 64))[:300]))
    add("cmyk.jpg", "use", lambda p: save_image(p, mode="CMYK", color=(0, 255, 255, 0)))
    add("sixteen.png", "use", lambda p: Image.fromarray(np.full((9, 9), 65535, np.uint16)).save(p))
    add("rgba.png", "use", lambda p: save_image(p, mode="RGBA", color=(255, 0, 0, 0)))
    add("palette.gif", "use", lambda p: Image.new("P", (9, 9), 3).save(p))
    add("animated.gif", "use", lambda p: Image.new("P", (9, 9), 1).save(
        p, save_all=True, append_images=[Image.new("P", (9, 9), 2)]))
    add("photo.webp", "use", lambda p: save_image(p, fmt="WEBP"))
    add("scan.tiff", "use", lambda p: save_image(p, fmt="TIFF"))
    add("old.bmp", "use", lambda p: save_image(p, fmt="BMP"))
    add("one pixel ünïcødé.png", "use", lambda p: save_image(p, size=(1, 1)))
    add("huge.png", "too many pixels", lambda p: save_image(p, size=(80, 80)))
    add("notes.txt", "not an image", lambda p: open(p, "w").write("notes"))
    add("icon.ico", "unsupported format", lambda p: save_image(p, size=(16, 16), fmt="ICO"))
    save_image(os.path.join(cls, ".hidden.jpg"))
    save_image(os.path.join(cls, "nested", "deeper", "inner.png"))
    expect["nested/deeper/inner.png"] = "use"
    return expect


def test_every_awkward_file_is_used_or_skipped_with_a_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_PIXELS", 5000)
    root = tmp_path / "ds"
    expect = _corpus(str(root))
    save_image(str(root / "plain" / "a.png"))
    os.symlink(str(root / "plain"), str(root / "plain" / "loop"))  # a symlink loop must not hang
    save_image(str(root / "stray.png"))  # a file at the root, outside any class
    os.makedirs(root / "empty_class")

    ds = data.scan(str(root), val_fraction=0, test_fraction=0)
    skipped = {os.path.relpath(s.path, root / "odd"): str(s.reason) for s in ds.skipped}
    used = {os.path.relpath(p, root / "odd") for p, _ in ds.splits["train"]}
    for name, how in expect.items():
        if how == "use":
            assert name in used, (name, skipped.get(name))
        else:
            assert how in skipped[name], (name, skipped.get(name))
    assert not any("hidden" in p for p in used)
    assert any(s.reason == "not inside a class folder" for s in ds.skipped)
    assert any("'empty_class' is empty" in str(w) for w in ds.warnings)
    assert ds.classes == ["odd", "plain"]


def test_modes_convert_to_the_right_rgb(tmp_path):
    cmyk = save_image(str(tmp_path / "c.jpg"), size=(8, 8), mode="CMYK", color=(0, 255, 255, 0))
    r, g, b = images.load_image(cmyk, 8)[4, 4]
    assert r > 200 and g < 60 and b < 60  # CMYK (0, 255, 255, 0) is red
    p16 = str(tmp_path / "s.png")
    Image.fromarray(np.full((8, 8), 32896, np.uint16)).save(p16)  # half of 65535
    assert abs(int(images.load_image(p16, 8)[0, 0, 0]) - 128) <= 2
    rgba = save_image(str(tmp_path / "t.png"), size=(8, 8), mode="RGBA", color=(255, 0, 0, 0))
    assert images.load_image(rgba, 8)[0, 0].tolist() == [255, 255, 255]  # transparent -> white
    assert images.load_image(save_image(str(tmp_path / "g.png"), mode="L"), 5).shape == (5, 5, 3)


def test_exif_orientation_is_honoured(tmp_path):
    path = str(tmp_path / "rotated.jpg")
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(path, exif=exif)
    assert images.open_image(path).size == (20, 40)


def test_errors_a_user_can_act_on(tmp_path):
    with pytest.raises(data.DatasetError, match="Folder not found"):
        data.scan(str(tmp_path / "nope"))
    one = tmp_path / "one"
    save_image(str(one / "cats" / "a.png"))
    with pytest.raises(data.DatasetError, match="at least two class folders"):
        data.scan(str(one))
    with pytest.raises(data.DatasetError, match="fractions"):
        data.scan(str(one), val_fraction=0.6, test_fraction=0.5)


def test_the_scan_hands_its_sentences_over_translatable(tmp_path):
    """The dashboard shows them in the reader's language: each keeps its English template, with the
    names from the folder apart from it; printed (the command line, skipped.json) it is the English."""
    root = tmp_path / "ds"
    save_image(str(root / "cats" / "a.png"))
    (root / "cats" / "notes.jpg").write_text("not a photo")
    save_image(str(root / "dogs" / "b.png"))
    os.makedirs(root / "birds")
    ds = data.scan(str(root), val_fraction=0, test_fraction=0)

    summary = ds.summary()
    assert summary.msgid == "{n_classes} classes ({names}); {counts}; {n_skipped} skipped"
    assert str(summary) == "2 classes (cats, dogs); train 2; 1 skipped"
    assert [(w.msgid, w.params) for w in ds.warnings] == [
        ("Class folder '{name}' is empty and was ignored.", {"name": "birds"})]
    [skipped] = ds.skipped
    assert skipped.reason.msgid == "not an image (the file's content is not a known image format)"
    assert skipped.record() == {"path": str(root / "cats" / "notes.jpg"), "reason": str(skipped.reason)}

    with pytest.raises(data.DatasetError) as refused:
        data.scan(str(root / "cats"))
    assert refused.value.message.msgid.startswith("Need at least two class folders with usable images in {folder}")
    assert refused.value.message.params["folder"] == str(root / "cats")


def test_unreadable_folder_is_a_clear_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root reads every folder")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0)
    try:
        with pytest.raises(data.DatasetError, match="permission"):
            data.scan(str(locked))
    finally:
        locked.chmod(0o755)


def test_a_class_with_one_image_goes_to_train(tmp_path):
    root = tmp_path / "d"
    save_image(str(root / "rare" / "only.png"))
    for i in range(5):
        save_image(str(root / "common" / f"{i}.png"))
    ds = data.scan(str(root), val_fraction=0.2, test_fraction=0.2)
    assert ds.counts()["train"]["rare"] == 1


def test_read_only_dataset_is_never_written(shapes):
    before = sorted(os.walk(shapes))
    for dirpath, _, files in os.walk(shapes):
        os.chmod(dirpath, 0o555)
    try:
        ds = data.scan(shapes)
        pipeline.load_arrays(ds.splits["train"], 16)
    finally:
        for dirpath, _, _ in os.walk(shapes):
            os.chmod(dirpath, 0o755)
    assert sorted(os.walk(shapes)) == before


def test_load_arrays_decodes_once_and_reports_files_that_changed(shapes):
    ds = data.scan(shapes)
    items = ds.splits["train"]
    broken = items[0][0]
    open(broken, "wb").write(b"gone bad after the scan")
    skipped = []
    x, y, paths = pipeline.load_arrays(items, 20, skipped)
    assert x.shape == (len(items) - 1, 20, 20, 3) and x.dtype == np.uint8
    assert len(y) == len(paths) == len(items) - 1 and broken not in paths
    assert [s.path for s in skipped] == [broken]
    again = pipeline.load_arrays(items, 20, [])
    assert again[0] is x  # cached: nothing decoded twice


def test_tf_dataset_batches_float_images(shapes):
    ds = data.scan(shapes)
    x, y, _ = pipeline.load_arrays(ds.splits["train"], 16)
    batches = list(pipeline.make_tf_dataset(x, y, 5, shuffle=True))
    assert sum(int(b[0].shape[0]) for b in batches) == len(y)
    assert batches[0][0].dtype.name == "float32" and float(batches[0][0].numpy().max()) > 1


def test_crop_keeps_the_aspect_ratio_and_stretch_squeezes(tmp_path):
    wide = np.zeros((20, 60, 3), np.uint8)
    wide[:, :20] = (255, 0, 0)
    wide[:, 20:40] = (0, 255, 0)
    wide[:, 40:] = (0, 0, 255)
    path = str(tmp_path / "wide.png")
    Image.fromarray(wide).save(path)
    cropped = images.load_image(path, 10, resize="crop")
    stretched = images.load_image(path, 12, resize="stretch")
    assert (cropped[:, :, 1] > 200).all()  # only the central (green) square is kept
    assert stretched[5, 0].tolist() == [255, 0, 0] and stretched[5, -1].tolist() == [0, 0, 255]
