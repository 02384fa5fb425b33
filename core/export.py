"""Export a run's model for use outside Transfer Lab: .keras, TensorFlow SavedModel, TFLite.

    python -m core.export RUN_DIR --format keras|savedmodel|tflite [--int8] [--out DIR]

Each export is one folder, DIR/<name>/ (DIR defaults to RUN_DIR/export; name is keras,
savedmodel, tflite or tflite-int8), holding the model and `export.json`: the class names, the
input size and resize mode, and what the model expects. Every exported model takes RGB images of
S x S pixels with values 0..255 and does its own preprocessing inside (Rescaling for the scratch
net, the backbone's preprocess_input for transfer models), and returns one softmax probability
per class, in the order of `classes`.

An export is written into a temporary folder beside its target and renamed into place, so a
failed export leaves nothing half-written (an older export of the same name stays until the new
one is complete); the temporary folder of an export killed midway is removed by a later export
once it is an hour old. A full, read-only or vanished output folder is an ExportError sentence. The last stdout line is one JSON object. Exit code 0 on success,
2 with a one-line error on bad input (no such run, no model, unwritable folder, no training
images for int8), 1 when the conversion itself failed.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import sys
import tempfile
import time
import zipfile
from datetime import datetime, timezone

from core import devices, files, runs
from core.messages import Explained, N_, message_of

FORMATS = ("keras", "savedmodel", "tflite")
INFO_FILE = "export.json"
MODEL_FILES = {"keras": "model.keras", "savedmodel": "saved_model", "tflite": "model.tflite"}
REPRESENTATIVE_IMAGES = 100  # training images the int8 converter calibrates its ranges on
TMP_EXPORT = files.TMP_PREFIX + "export-"  # + pid: the folder an export is written into, then renamed
STALE_AFTER_S = 3600  # a temporary export folder untouched this long, of a process gone, is swept


class ExportError(Explained, ValueError):
    """An export that cannot start (bad run, format or folder), with a sentence saying what to do."""


class ExportFailed(Explained, RuntimeError):
    """The converter itself failed on this model."""


def export_name(fmt: str, int8: bool = False) -> str:
    return "tflite-int8" if fmt == "tflite" and int8 else fmt


def open_run(run_dir: str) -> runs.Run:
    """The trained run; ExportError when run_dir is not a run folder or the run is damaged."""
    try:
        return runs.open_run(run_dir)
    except runs.NotARun as e:
        raise ExportError(e.message) from None


def export_run(run_dir: str, fmt: str, int8: bool = False, out: str | None = None) -> dict:
    """Export the run's best model; returns what the CLI prints (paths, size, seconds)."""
    t0 = time.time()
    if fmt not in FORMATS:
        raise ExportError(N_("Unknown format '{format}': choose one of {choices}."),
                          format=fmt, choices=", ".join(FORMATS))
    if int8 and fmt != "tflite":
        raise ExportError(N_("int8 quantization applies to the tflite format only."))
    run = open_run(run_dir)
    config = run.config
    out = out or runs.export_dir(run_dir)
    target = os.path.join(out, export_name(fmt, int8))
    if os.path.exists(target) and not os.path.exists(os.path.join(target, INFO_FILE)):
        raise ExportError(N_("{folder} exists and is not an earlier export: move it away or choose another "
                             "output folder."), folder=target)
    try:
        model = runs.load_model(run_dir)
    except (FileNotFoundError, runs.ModelUnavailable) as e:
        raise ExportError(message_of(e)) from None
    representative = representative_images(config) if int8 else None
    created = not os.path.exists(out)
    tmp = _temp_folder(out)
    try:
        path = WRITERS[fmt](model, tmp, representative)
        info = model_info(run, model, fmt, int8)
        if fmt == "savedmodel":
            info["signature"] = _saved_model_signature(path)
        files.write_json(os.path.join(tmp, INFO_FILE), info)
        files.readable_by_all(tmp)
        _move_into_place(tmp, target)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if created and os.path.isdir(out) and not os.listdir(out):
            os.rmdir(out)
        if isinstance(e, OSError):  # the disk filled up, or the folder went read-only or away
            raise ExportError(N_("Cannot write to {folder}: {why}."), folder=out, why=files.why_unwritable(e)) from None
        raise
    model_path = os.path.join(target, MODEL_FILES[fmt])
    return {"run_dir": run_dir, "format": fmt, "int8": bool(int8), "folder": target, "path": model_path,
            "info": os.path.join(target, INFO_FILE), "bytes": _size(model_path),
            "seconds": round(time.time() - t0, 2)}


# ---------------------------------------------------------------- the three writers

def write_keras(model, folder: str, representative=None) -> str:
    path = os.path.join(folder, MODEL_FILES["keras"])
    model.save(path)
    return path


def write_saved_model(model, folder: str, representative=None) -> str:
    path = os.path.join(folder, MODEL_FILES["savedmodel"])
    try:
        model.export(path, format="tf_saved_model", verbose=False)
    except Exception as e:
        raise ExportFailed(N_("SavedModel export failed: {error}"), error=f"{type(e).__name__}: {e}") from e
    return path


def write_tflite(model, folder: str, representative=None) -> str:
    """TFLite from a SavedModel of the model; int8 weights and activations when `representative`
    (uint8 images) is given. Inputs and outputs stay float32 either way: the same 0..255 pixels in,
    the same probabilities out."""
    import numpy as np
    import tensorflow as tf

    staging = write_saved_model(model, folder)
    try:
        converter = tf.lite.TFLiteConverter.from_saved_model(staging)
        if representative is not None:
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: ([img[None].astype(np.float32)] for img in representative)
            # Every op in int8, or a clear failure: no silent fallback to float kernels.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        with devices.native_stderr_silenced():  # the converter's C++ side logs to fd 2
            flat = converter.convert()
    except Exception as e:
        failed = N_("TFLite int8 conversion failed: {error}") if representative is not None else \
            N_("TFLite conversion failed: {error}")
        raise ExportFailed(failed, error=f"{type(e).__name__}: {e}") from e
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    path = os.path.join(folder, MODEL_FILES["tflite"])
    with open(path, "wb") as f:
        f.write(flat)
    return path


WRITERS = {"keras": write_keras, "savedmodel": write_saved_model, "tflite": write_tflite}


# ---------------------------------------------------------------- what travels with the model

def preprocessing_of(model) -> str:
    """What the model's own 'preprocess' layer does to the 0..255 pixels it is given."""
    try:
        layer = model.get_layer("preprocess")
    except ValueError:
        return "none inside the model"
    if hasattr(layer, "backbone"):
        return f"keras.applications {layer.backbone} preprocess_input, inside the model"
    scale, offset = getattr(layer, "scale", None), getattr(layer, "offset", 0.0)
    if scale is not None:
        return f"x * {scale:g} + {offset:g} (Rescaling), inside the model"
    return f"{type(layer).__name__}, inside the model"


def model_info(run: runs.Run, model, fmt: str, int8: bool) -> dict:
    """The export.json beside the model: everything needed to feed it and read its output."""
    import keras
    import tensorflow as tf

    config, status, metrics = run.config, run.status, run.metrics or {}
    size = int(config["image_size"])
    resize = config.get("resize", "crop")
    custom = [l.name for l in model.layers if type(l).__module__.startswith("core.")]
    return {
        "format": fmt,
        "file": MODEL_FILES[fmt],
        "quantization": "int8 weights and activations (float32 input and output)" if int8 else "none (float32)",
        "classes": list(config["classes"]),
        "input": {
            "shape": [None, size, size, 3], "dtype": "float32", "layout": "NHWC", "color": "RGB",
            "value_range": [0, 255],
            "resize": resize,
            "how": ("central square crop (aspect ratio kept), then bilinear resize to "
                    f"{size}x{size}" if resize == "crop" else f"whole image bilinear-resized to {size}x{size}"),
        },
        "preprocessing": preprocessing_of(model),
        "note": ("Give the model raw pixel values 0..255 (uint8 cast to float32): it normalizes them "
                 "itself. Do not scale or normalize the images beforehand."),
        "output": "softmax probabilities, shape [N, %d], in the order of classes" % len(config["classes"]),
        "loading": _loading_hint(fmt, custom),
        "run": {"id": run.id, "strategy": config.get("strategy"),
                "base": config.get("base"), "best_val_accuracy": status.get("best_val_accuracy"),
                "test_accuracy": metrics.get("accuracy"), "evaluated_on": metrics.get("evaluated_on")},
        "exported": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {"tensorflow": tf.__version__, "keras": keras.__version__},
    }


def _loading_hint(fmt: str, custom_layers: list[str]) -> str:
    if fmt == "keras":
        hint = "keras.models.load_model('model.keras')"
        if custom_layers:
            hint += (f"; its layer(s) {', '.join(custom_layers)} are Transfer Lab's Preprocess: "
                     "`import core.models` first (or use the SavedModel / TFLite export, which need nothing)")
        return hint
    if fmt == "savedmodel":
        return "tf.saved_model.load('saved_model').signatures['serving_default'](image=batch)"
    return "tf.lite.Interpreter(model_path='model.tflite') (or ai_edge_litert.interpreter.Interpreter)"


def _saved_model_signature(path: str) -> dict:
    """The serving signature's input and output names, read back from the exported SavedModel."""
    import tensorflow as tf

    loaded = tf.saved_model.load(path)
    fn = loaded.signatures["serving_default"]
    return {"name": "serving_default", "inputs": sorted(fn.structured_input_signature[1]),
            "outputs": sorted(fn.structured_outputs)}


def representative_images(config: dict, n: int = REPRESENTATIVE_IMAGES):
    """Up to n of the run's training images (seeded pick), decoded as training decoded them."""
    import numpy as np

    from core import data
    from core.images import load_image

    root = (config.get("dataset") or {}).get("root") or config.get("data")
    try:
        ds = data.scan(root, config.get("val_fraction", 0.15), config.get("test_fraction", 0.15),
                       config.get("seed", 0))
    except data.DatasetError as e:
        raise ExportError(N_("int8 calibrates on some of the run's training images, which cannot be read: {reason}"),
                          reason=message_of(e)) from None
    items = list(ds.splits["train"])
    random.Random(0).shuffle(items)
    images = []
    for path, _ in items:
        try:
            images.append(load_image(path, int(config["image_size"]), config.get("resize", "crop")))
        except (ValueError, OSError):
            continue
        if len(images) >= n:
            break
    if not images:
        raise ExportError(N_("int8 calibrates on the run's training images, and none in {folder} can be read."),
                          folder=root)
    return np.stack(images)


# ---------------------------------------------------------------- files

def _temp_folder(out: str) -> str:
    """A new temporary folder in out, named after this process; stale ones are swept first."""
    try:
        os.makedirs(out, exist_ok=True)
        sweep_stale_exports(out)
        return tempfile.mkdtemp(prefix=f"{TMP_EXPORT}{os.getpid()}-", dir=out)
    except OSError as e:
        raise ExportError(N_("Cannot write to {folder} ({error}): choose another output folder."),
                          folder=out, error=str(e.strerror or e)) from None


def sweep_stale_exports(out: str, max_age: float = STALE_AFTER_S) -> list[str]:
    """Remove the temporary folders of exports that were killed midway: untouched for max_age
    seconds and not of a process still running (an export in progress keeps its folder)."""
    removed = []
    for entry in os.scandir(out):
        if not (entry.name.startswith(TMP_EXPORT) and entry.is_dir(follow_symlinks=False)):
            continue
        pid = entry.name[len(TMP_EXPORT):].split("-")[0]
        try:
            untouched = time.time() - _last_change(entry.path)
        except OSError:  # being removed by someone else
            continue
        if untouched > max_age and not runs.process_alive(pid):
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
    return removed


def _last_change(folder: str) -> float:
    """The newest modification time of the folder and everything in it."""
    times = [os.lstat(folder).st_mtime]
    for d, dirs, names in os.walk(folder):
        times += [os.lstat(os.path.join(d, name)).st_mtime for name in dirs + names]
    return max(times)


def _move_into_place(tmp: str, target: str) -> None:
    """Rename tmp to target; an older export there is replaced only once the new one is complete."""
    old = None
    if os.path.exists(target):
        old = tmp + "-old"
        os.replace(target, old)
    try:
        os.replace(tmp, target)
    except BaseException:
        if old:
            os.replace(old, target)
        raise
    if old:
        shutil.rmtree(old, ignore_errors=True)


def _size(path: str) -> int:
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, names in os.walk(path) for f in names)


def zip_folder(folder: str) -> bytes:
    """The export folder as a zip (what the dashboard offers for a SavedModel)."""
    buf = io.BytesIO()
    name = os.path.basename(os.path.normpath(folder))
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for d, _, names in os.walk(folder):
            for f in sorted(names):
                full = os.path.join(d, f)
                z.write(full, os.path.join(name, os.path.relpath(full, folder)))
    return buf.getvalue()


# ---------------------------------------------------------------- the command line

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m core.export", description="Export a trained run's model.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder, e.g. runs/20260101-120000-scratch-scratch")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--int8", action="store_true",
                   help="tflite only: int8 weights and activations, calibrated on the run's training images")
    p.add_argument("--out", help="folder that receives the export folder (default RUN_DIR/export)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    devices.configure()

    with devices.native_stderr_silenced():  # TensorFlow's start-up and device probing chatter
        devices.start_tensorflow()
    try:
        result = export_run(args.run_dir, args.format, args.int8, args.out)
    except ExportError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ExportFailed as e:
        print(f"error: {e}", file=sys.stderr)
        print(json.dumps({"run_dir": args.run_dir, "format": args.format, "int8": args.int8, "error": str(e)}))
        return 1
    print(f"Exported {result['path']} ({result['bytes'] / 1e6:.2f} MB) and {result['info']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
