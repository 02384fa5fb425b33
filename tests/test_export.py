"""core.export: every format loads back with the plain framework API and predicts what the run's
model predicts; export.json says how to feed it; failures leave nothing behind; the CLI contract.

Tolerances (probabilities in 0..1): .keras 1e-6, SavedModel 1e-5, TFLite float 1e-4 (XNNPACK
kernels sum in another order); TFLite int8: no probability more than 0.05 away, and the same
class on at least 90% of the test images where the float model is decisive (top two more than
0.1 apart: closer ones may flip within the tolerance).
"""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import ROOT
from core import export, runs
from core.export import ExportError, ExportFailed, export_run
from tiny_runs import SIZE

pytestmark = pytest.mark.timeout(300)


@pytest.fixture
def run(tiny_run, tmp_path) -> dict:
    """The tiny run, with an output folder of this test's own."""
    return {**tiny_run, "out": str(tmp_path / "exports")}


def expected(tiny_run) -> np.ndarray:
    return runs.load_model(tiny_run["run_dir"]).predict(tiny_run["images"].astype(np.float32), verbose=0)


def tflite_predict(path: str, images: np.ndarray) -> tuple[np.ndarray, tf.lite.Interpreter]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tf.lite.Interpreter's deprecation notice
        interpreter = tf.lite.Interpreter(model_path=path)
    inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(inp["index"], list(images.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], images.astype(inp["dtype"]))
    interpreter.invoke()
    return interpreter.get_tensor(out["index"]), interpreter


def read_info(result: dict) -> dict:
    with open(result["info"]) as f:
        return json.load(f)


# ---------------------------------------------------------------- round trips

def test_keras_export_loads_with_keras_and_predicts_the_same(run):
    result = export_run(run["run_dir"], "keras", out=run["out"])
    assert result["path"] == os.path.join(run["out"], "keras", "model.keras") and result["bytes"] > 0
    model = keras.models.load_model(result["path"])  # the plain API: no custom objects needed here
    got = model.predict(run["images"].astype(np.float32), verbose=0)
    np.testing.assert_allclose(got, expected(run), atol=1e-6)
    info = read_info(result)
    assert info["classes"] == run["classes"] and info["file"] == "model.keras"
    assert info["input"]["shape"] == [None, SIZE, SIZE, 3] and info["input"]["resize"] == "crop"
    assert info["input"]["value_range"] == [0, 255] and info["input"]["dtype"] == "float32"
    assert "Rescaling" in info["preprocessing"] and "inside the model" in info["preprocessing"]


def test_saved_model_serving_signature_predicts_the_same(run):
    result = export_run(run["run_dir"], "savedmodel", out=run["out"])
    info = read_info(result)
    assert info["signature"] == {"name": "serving_default", "inputs": ["image"], "outputs": ["output_0"]}
    serve = tf.saved_model.load(result["path"]).signatures["serving_default"]
    got = serve(image=tf.constant(run["images"], tf.float32))["output_0"].numpy()
    np.testing.assert_allclose(got, expected(run), atol=1e-5)
    assert got.argmax(1).tolist() == expected(run).argmax(1).tolist()


def test_tflite_float_predicts_the_same(run):
    result = export_run(run["run_dir"], "tflite", out=run["out"])
    assert result["path"].endswith(os.path.join("tflite", "model.tflite"))
    got, _ = tflite_predict(result["path"], run["images"])
    np.testing.assert_allclose(got, expected(run), atol=1e-4)
    assert read_info(result)["quantization"].startswith("none")


def test_tflite_int8_agrees_with_the_float_model(run):
    float_size = export_run(run["run_dir"], "tflite", out=run["out"])["bytes"]
    result = export_run(run["run_dir"], "tflite", int8=True, out=run["out"])
    assert result["folder"] == os.path.join(run["out"], "tflite-int8")
    got, interpreter = tflite_predict(result["path"], run["images"])
    want = expected(run)
    assert np.abs(got - want).max() <= 0.05, (got, want)
    # Within 0.05, the class can only change where the float model's top two are closer than 0.1.
    top2 = np.sort(want, axis=1)[:, -2:]
    decisive = top2[:, 1] - top2[:, 0] > 0.1
    assert decisive.mean() >= 0.5, want  # enough images to say something
    agreement = float((got.argmax(1) == want.argmax(1))[decisive].mean())
    assert agreement >= 0.9, (agreement, got, want)
    # Really quantized: int8 tensors inside, float32 at the edges, and a smaller file.
    dtypes = {d["dtype"] for d in interpreter.get_tensor_details()}
    assert np.int8 in dtypes
    assert interpreter.get_input_details()[0]["dtype"] == np.float32
    assert result["bytes"] < float_size
    assert read_info(result)["quantization"].startswith("int8")


def test_the_backbone_preprocess_layer_travels_with_every_format(tmp_path):
    """Transfer models carry the backbone's preprocess_input as our own Preprocess layer: the SavedModel
    and TFLite exports run it without Transfer Lab, and .keras loads once core.models is imported.
    (A tiny conv net stands in for the backbone: the layer is what is tested, and it stays fast.)"""
    from keras import layers

    from core.models import Preprocess

    keras.utils.set_random_seed(1)
    inputs = keras.Input((SIZE, SIZE, 3), name="image")
    x = Preprocess("mobilenet_v2", name="preprocess")(inputs)
    x = layers.Conv2D(8, 3, activation="relu", name="conv1")(x)
    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    model = keras.Model(inputs, layers.Dense(3, activation="softmax", name="predictions")(x))
    run_dir = runs.create_run(str(tmp_path / "runs"), {"strategy": "feature-extraction", "base": "mobilenet_v2",
                                                       "image_size": SIZE, "classes": ["a", "b", "c"]})
    runs.save_model(run_dir, model)
    images = np.random.default_rng(0).integers(0, 255, (6, SIZE, SIZE, 3)).astype(np.float32)
    want = model.predict(images, verbose=0)
    # Preprocessing really happens inside: the model's output depends on the scale it is given.
    assert not np.allclose(model.predict(images / 255.0, verbose=0), want, atol=1e-3)
    saved = export_run(run_dir, "savedmodel")
    got = tf.saved_model.load(saved["path"]).signatures["serving_default"](image=tf.constant(images))["output_0"]
    np.testing.assert_allclose(got.numpy(), want, atol=1e-5)
    lite, _ = tflite_predict(export_run(run_dir, "tflite")["path"], images)
    np.testing.assert_allclose(lite, want, atol=1e-4)
    kept = export_run(run_dir, "keras")
    np.testing.assert_allclose(keras.models.load_model(kept["path"]).predict(images, verbose=0), want, atol=1e-6)
    info = read_info(kept)
    assert info["preprocessing"].startswith("keras.applications mobilenet_v2 preprocess_input")
    assert "import core.models" in info["loading"]
    assert saved["folder"] == os.path.join(run_dir, "export", "savedmodel")  # the default place


# ---------------------------------------------------------------- failures leave nothing

def test_a_failed_conversion_leaves_nothing_and_keeps_the_earlier_export(run, monkeypatch):
    first = export_run(run["run_dir"], "tflite", out=run["out"])
    before = open(first["path"], "rb").read()

    def broken(model, folder, representative=None):
        open(os.path.join(folder, "model.tflite"), "wb").write(b"half")
        raise ExportFailed("TFLite conversion failed: boom")

    monkeypatch.setitem(export.WRITERS, "tflite", broken)
    with pytest.raises(ExportFailed):
        export_run(run["run_dir"], "tflite", out=run["out"])
    assert sorted(os.listdir(run["out"])) == ["tflite"]  # no temporary folder left
    assert open(first["path"], "rb").read() == before
    with pytest.raises(ExportFailed):
        export_run(run["run_dir"], "tflite", out=os.path.join(run["out"], "new"))
    assert not os.path.exists(os.path.join(run["out"], "new"))


def test_bad_requests_get_a_sentence(run, tmp_path):
    with pytest.raises(ExportError, match="Unknown format 'onnx'"):
        export_run(run["run_dir"], "onnx")
    with pytest.raises(ExportError, match="tflite format only"):
        export_run(run["run_dir"], "keras", int8=True)
    with pytest.raises(ExportError, match="Not a run folder"):
        export_run(str(tmp_path), "keras")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ExportError, match="Cannot write to"):
        export_run(run["run_dir"], "keras", out=str(blocker / "sub"))
    foreign = tmp_path / "mine" / "keras"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ExportError, match="is not an earlier export"):
        export_run(run["run_dir"], "keras", out=str(tmp_path / "mine"))
    assert os.listdir(foreign) == ["notes.txt"]


def test_int8_without_the_training_images_says_so(run, tmp_path):
    import shutil

    moved = shutil.copytree(run["run_dir"], tmp_path / "run")
    config = runs.read_json(str(moved / "config.json"))
    runs.write_json(str(moved / "config.json"), {**config, "data": str(tmp_path / "gone"),
                                                 "dataset": {"root": str(tmp_path / "gone")}})
    with pytest.raises(ExportError, match="int8 calibrates on some of the run's training images.*Folder not found"):
        export_run(str(moved), "tflite", int8=True)


# ---------------------------------------------------------------- the command line

def cli(*args, timeout=180):
    return subprocess.run([sys.executable, "-m", "core.export", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})


def test_cli_prints_the_result_as_its_last_line(run):
    p = cli(run["run_dir"], "--format", "tflite", "--out", run["out"])
    assert p.returncode == 0, p.stderr[-2000:]
    result = json.loads(p.stdout.strip().splitlines()[-1])
    assert result["format"] == "tflite" and result["int8"] is False
    assert os.path.isfile(result["path"]) and os.path.getsize(result["path"]) == result["bytes"]
    assert read_info(result)["classes"] == run["classes"]


def test_cli_errors_are_one_line_with_exit_2(run, tmp_path, capsys):
    empty_run = runs.create_run(str(tmp_path / "runs"), {"strategy": "scratch", "image_size": 32, "classes": ["a", "b"]})
    p = cli(empty_run, "--format", "keras")
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [p.stderr.strip()]  # one line, no traceback or TF chatter
    assert "has no saved model" in p.stderr and not os.path.exists(os.path.join(empty_run, "export"))
    for args, message in (([run["run_dir"], "--format", "keras", "--int8"], "tflite format only"),
                          ([str(tmp_path), "--format", "keras"], "Not a run folder")):
        assert export.main(args) == 2
        assert message in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        export.main([run["run_dir"], "--format", "onnx"])
    assert e.value.code == 2 and "invalid choice: 'onnx'" in capsys.readouterr().err


def test_a_full_disk_during_an_export_is_a_sentence_and_leaves_nothing(run, monkeypatch):
    def half_then_full(model, folder, representative=None):
        with open(os.path.join(folder, "model.keras"), "wb") as f:
            f.write(b"PK\3\4 half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setitem(export.WRITERS, "keras", half_then_full)
    with pytest.raises(ExportError) as e:
        export_run(run["run_dir"], "keras", out=run["out"])
    assert str(e.value) == f"Cannot write to {run['out']}: the disk is full."
    assert not os.path.exists(run["out"])  # not even the folder it made


def _temp_export(out: str, pid: int, hours_old: float) -> str:
    folder = os.path.join(out, f"{export.TMP_EXPORT}{pid}-abc")
    os.makedirs(os.path.join(folder, "saved_model"))
    with open(os.path.join(folder, "saved_model", "x.pb"), "wb") as f:
        f.write(b"half")
    then = time.time() - hours_old * 3600
    for path in (os.path.join(folder, "saved_model", "x.pb"), os.path.join(folder, "saved_model"), folder):
        os.utime(path, (then, then))
    return folder


def test_an_export_sweeps_the_stale_temp_folders_of_killed_exports(run):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True).stdout.strip()
    killed = _temp_export(run["out"], int(dead), hours_old=2)      # a killed export, long ago: swept
    recent = _temp_export(run["out"], int(dead) + 1, hours_old=0.1)  # maybe another machine's, in progress
    ours = _temp_export(run["out"], os.getpid(), hours_old=2)      # a process still running: in use
    export_run(run["run_dir"], "keras", out=run["out"])
    assert not os.path.exists(killed)
    assert os.path.exists(recent) and os.path.exists(ours)
    assert sorted(os.listdir(run["out"])) == sorted(["keras", os.path.basename(recent), os.path.basename(ours)])


def test_a_damaged_run_is_refused_in_a_sentence(run, tmp_path):
    damaged = tmp_path / "damaged-run"
    shutil.copytree(run["run_dir"], damaged)
    (damaged / "status.json").write_text("[1, 2]")
    with pytest.raises(ExportError, match=r"Run damaged-run is damaged: status.json holds \[1, 2\]"):
        export_run(str(damaged), "keras", out=run["out"])
