"""python -m core.train: the command-line contract of PRODUCT.md."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import CATS_AND_DOGS, ROOT, jpeg_bytes, save_image
from core import train as train_cli

KEYS = {"run_dir", "strategy", "base", "epochs_run", "seconds", "val_accuracy", "test_accuracy",
        "evaluated_on", "skipped"}


def train(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "core.train", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_a_folder_with_broken_files_trains_and_counts_them(shapes, tmp_path):
    open(os.path.join(shapes, "circle", "zero.jpg"), "wb").close()
    open(os.path.join(shapes, "square", "cut.jpg"), "wb").write(jpeg_bytes((64, 64))[:400])
    open(os.path.join(shapes, "triangle", "readme.jpg"), "w").write("not a picture")
    p = train("--data", shapes, "--strategy", "scratch", "--image-size", "48", "--epochs", "2",
              "--batch-size", "8", "--augment", "--runs-dir", str(tmp_path / "runs"))
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert KEYS <= set(result)
    assert result["skipped"] == 3 and result["epochs_run"] == 2 and result["evaluated_on"] == "test"
    assert result["strategy"] == "scratch" and os.path.isdir(result["run_dir"])
    assert "Phase: head" not in p.stdout and "train epoch 2" in p.stdout  # progress is printed


def test_without_a_test_split_it_evaluates_on_validation_and_says_so(split_shapes, tmp_path):
    shutil.rmtree(os.path.join(split_shapes, "test"))
    p = train("--data", split_shapes, "--strategy", "scratch", "--image-size", "48", "--epochs", "1",
              "--augment", "--augment-preset", "light", "--runs-dir", str(tmp_path / "runs"))
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["evaluated_on"] == "validation"
    with open(os.path.join(result["run_dir"], "config.json")) as f:
        augment = json.load(f)["augment_config"]
    assert augment["shear"] == 0.2 and augment["horizontal_flip"] and augment["rotation"] == 0  # the blog's


def test_bad_input_exits_2_with_one_line(shapes, tmp_path, capsys):
    """One case through `python -m core.train` (no traceback, no TensorFlow chatter on stderr), the
    others through its main() in this process (a fresh TensorFlow import takes seconds)."""
    runs_dir = str(tmp_path / "runs")
    p = train("--data", "/no/such/folder", "--strategy", "scratch", "--runs-dir", runs_dir, timeout=120)
    assert p.returncode == 2
    assert len(p.stderr.strip().splitlines()) == 1 and "Folder not found" in p.stderr
    for args, message in ((["--strategy", "scratch", "--image-size", "32"], "at least 48 px"),
                          (["--strategy", "fine-tune", "--base", "alexnet"], "Unknown base")):
        assert train_cli.main(["--data", shapes, *args, "--runs-dir", runs_dir]) == 2, args
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not os.path.exists(runs_dir)  # nothing half-written


def test_a_single_class_is_a_clear_error(tmp_path, capsys):
    save_image(str(tmp_path / "only" / "cats" / "a.png"))
    assert train_cli.main(["--data", str(tmp_path / "only"), "--strategy", "scratch"]) == 2
    assert "at least two class folders" in capsys.readouterr().err


@pytest.mark.slow
def test_feature_extraction_on_real_photos(tmp_path):
    """A 100-photo slice of cats_and_dogs_small (copies: a link out of its class folder is skipped):
    MobileNetV2 features separate them."""
    if not os.path.isdir(CATS_AND_DOGS):
        pytest.skip("../shared/datasets/cats_and_dogs_small is not here")
    for split, n in (("train", 30), ("validation", 10), ("test", 20)):
        for cls in ("cats", "dogs"):
            src = os.path.join(CATS_AND_DOGS, split, cls)
            dst = tmp_path / "cd" / split / cls
            dst.mkdir(parents=True)
            for name in sorted(os.listdir(src))[:n]:
                shutil.copyfile(os.path.join(src, name), dst / name)
    p = train("--data", str(tmp_path / "cd"), "--strategy", "feature-extraction", "--base", "mobilenet_v2",
              "--image-size", "160", "--epochs", "15", "--runs-dir", str(tmp_path / "runs"))
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["test_accuracy"] >= 0.9, result
