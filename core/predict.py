"""Predict: a trained run's model, or a pretrained ImageNet classifier, on new images, one row per file.

    python -m core.predict RUN_DIR FOLDER [--out CSV]
    python -m core.predict --pretrained mobilenet_v2 FILE_OR_FOLDER [--top 5]

Every file under FOLDER (recursively, hidden files left out) is opened with core.data's checks
and decoded exactly as the run's training images were (size, crop or stretch). A file that
cannot be used becomes a row with the reason in the `error` column instead of stopping the rest.
The CSV has the columns path, predicted, confidence, prob_<class> (one per class, in the run's
class order) and error. Nothing is written into FOLDER: the CSV goes to --out, by default
RUN_DIR/predict/<folder name>.csv. The last stdout line is one JSON object; exit code 0 on
success, 2 with a one-line error on bad input (no such run, no model, no such folder, no files,
unwritable CSV).

With --pretrained KEY (a key of core.pretrained.CLASSIFIERS) the images are classified into the
1000 ImageNet classes and the CSV goes to stdout, its columns path, predicted, confidence, then
class_1, prob_1 ... class_K, prob_K (the --top K most probable classes, default 5) and error; the
last line is again one JSON object. An unknown key or weights that are missing and cannot be
downloaded: one sentence on stderr, exit code 2.

The dashboard's Predict page calls the same functions on uploaded files (bytes).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from core import data, devices, files, images, pretrained, runs
from core.backbones import WeightsUnavailable
from core.messages import ConfigError, Explained, N_, message_of

CHUNK = 256  # images decoded and predicted at a time: memory stays flat on a big folder


class PredictError(Explained, ValueError):
    """Prediction cannot start (bad run, folder or output), with a sentence saying what to do."""


@dataclass
class Predictor:
    """A model with what is needed to feed it: class names, image size, resize mode; `top` K makes
    rows name the K most probable classes instead of one probability column per class."""
    model: object
    classes: list[str]
    image_size: int
    resize: str = "crop"
    top: int | None = None

    @classmethod
    def from_run(cls, run_dir: str, model=None) -> "Predictor":
        """The run's best model (safe mode); pass `model` to reuse one already loaded."""
        try:
            config = runs.open_run(run_dir).config
        except runs.NotARun as e:
            raise PredictError(e.message) from None
        if model is None:
            try:
                model = runs.load_model(run_dir)
            except (FileNotFoundError, runs.ModelUnavailable) as e:
                raise PredictError(message_of(e)) from None
        return cls(model, list(config["classes"]), int(config["image_size"]), config.get("resize", "crop"))

    @classmethod
    def pretrained(cls, key: str, top: int = 5) -> "Predictor":
        """A pretrained ImageNet classifier (core.pretrained); ConfigError or WeightsUnavailable
        (one sentence each) when it cannot be used."""
        size = pretrained.classifier(key).size
        return cls(pretrained.load(key), pretrained.class_names(), size, "crop", top)

    def columns(self) -> list[str]:
        if self.top:
            ranked = [name for k in range(1, self.top + 1) for name in (f"class_{k}", f"prob_{k}")]
            return ["path", "predicted", "confidence", *ranked, "error"]
        return ["path", "predicted", "confidence", *[f"prob_{c}" for c in self.classes], "error"]


def _decode(predictor: Predictor, source, budget: images.DecodeBudget | None = None) -> tuple[np.ndarray | None, str]:
    """(image or None, reason it cannot be used)."""
    try:
        if isinstance(source, (bytes, bytearray)):
            if not source:
                return None, "empty file (0 bytes)"
            source = io.BytesIO(source)
        return images.load_image(source, predictor.image_size, predictor.resize, budget), ""
    except Exception as e:  # a bad file (or a decoder bug) must not stop the other files
        return None, str(images.why_unusable(e))  # rows hold text: they go to a CSV


def predict_images(predictor: Predictor, images: np.ndarray) -> np.ndarray:
    """Probabilities (N, classes) for uint8 images already at the run's size."""
    from core import explain

    if len(images) == 0:
        return np.zeros((0, len(predictor.classes)), np.float32)
    return explain.probabilities(predictor.model, images)


def row(predictor: Predictor, name: str, probs: np.ndarray | None, error: str = "") -> dict:
    """One CSV line: the prediction, or the reason the file could not be used."""
    out = dict.fromkeys(predictor.columns())
    out.update({"path": name, "predicted": "", "error": error})
    if probs is None:
        return out
    k = int(np.argmax(probs))
    out["predicted"], out["confidence"] = predictor.classes[k], round(float(probs[k]), 6)
    if predictor.top:
        for rank, i in enumerate(np.argsort(-probs, kind="stable")[:predictor.top], 1):
            out[f"class_{rank}"], out[f"prob_{rank}"] = predictor.classes[i], round(float(probs[i]), 6)
    else:
        out.update({f"prob_{c}": round(float(p), 6) for c, p in zip(predictor.classes, probs)})
    return out


def predict_files(predictor: Predictor, files, progress=None, workers: int | None = None) -> list[dict]:
    """Rows for [(name, path or bytes or file object)], in order; bad files become error rows.

    The images being decoded hold their bytes in a budget of this request within the server's
    (core.images.DecodeBudget): a folder of huge images waits for room instead of taking gigabytes.
    """
    files = list(files)
    rows: list[dict] = []
    budget = images.DecodeBudget(images.REQUEST_DECODE_BYTES, parent=images.DECODE_BUDGET)
    with ThreadPoolExecutor(workers or images.decode_workers(8)) as pool:
        for start in range(0, len(files), CHUNK):
            chunk = files[start:start + CHUNK]
            decoded = list(pool.map(lambda f: _decode(predictor, f[1], budget), chunk))
            good = [img for img, _ in decoded if img is not None]
            probs = iter(predict_images(predictor, np.stack(good) if good else np.zeros((0,))))
            for (name, _), (img, reason) in zip(chunk, decoded):
                rows.append(row(predictor, images.display_name(name), next(probs) if img is not None else None, reason))
            if progress:
                progress(len(rows), len(files))
    return rows


def folder_files(folder: str, skipped: list | None = None, within: list[str] | None = None) -> list[str]:
    """Every non-hidden file under folder, recursively (core.data.list_images: symlink loops are
    cut; a link that leads outside the real folders `within`, default the folder itself, goes to
    `skipped` instead)."""
    folder = os.path.expanduser(str(folder))
    if not os.path.exists(folder):
        raise PredictError(N_("Folder not found: {folder}"), folder=images.display_name(folder))
    if not os.path.isdir(folder):
        raise PredictError(N_("Not a folder: {folder}"), folder=images.display_name(folder))
    outside = data.OUTSIDE_ROOTS if within else "link leads outside the folder"
    return data.list_images(folder, skipped, within, outside)


def folder_listing(folder: str, within: list[str] | None = None) -> tuple[list[str], list[data.Skipped]]:
    """(files to classify, files that cannot be listed or lead outside `within`); PredictError when
    the folder holds no file at all."""
    skipped: list[data.Skipped] = []
    paths = folder_files(folder, skipped, within)
    if not paths and not skipped:
        raise PredictError(N_("No files in {folder}: put the images to classify in it (subfolders are read too)."),
                           folder=images.display_name(folder))
    return paths, skipped


def predict_listing(predictor: Predictor, listing: tuple[list[str], list[data.Skipped]], progress=None) -> list[dict]:
    """Rows for folder_listing's files, then a row with the reason for each file it left out."""
    paths, skipped = listing
    rows = predict_files(predictor, [(p, p) for p in paths], progress)
    return rows + [row(predictor, images.display_name(s.path), None, str(s.reason)) for s in skipped]


def predict_folder(predictor: Predictor, folder: str, progress=None, within: list[str] | None = None) -> list[dict]:
    """Rows for every file under folder; PredictError when there is none."""
    return predict_listing(predictor, folder_listing(folder, within), progress)


def to_csv(rows: list[dict], columns: list[str]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    return buf.getvalue()


def write_csv(rows: list[dict], columns: list[str], path: str) -> None:
    """The CSV, written atomically (a temp file beside it, then renamed)."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".csv", dir=folder)
    except OSError as e:
        raise PredictError(N_("Cannot write {path} ({error}): choose another --out."),
                           path=path, error=str(e.strerror or e)) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(to_csv(rows, columns))
        files.readable_by_all(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def summary(rows: list[dict], classes: list[str] | None) -> dict:
    """{images, predicted, errors, counts per class} (classes None: only the classes predicted)."""
    counts = {c: 0 for c in classes} if classes is not None else {}
    for r in rows:
        if r["predicted"]:
            counts[r["predicted"]] = counts.get(r["predicted"], 0) + 1
    errors = sum(1 for r in rows if r["error"])
    return {"images": len(rows), "predicted": len(rows) - errors, "errors": errors, "counts": counts}


def default_csv(run_dir: str, folder: str) -> str:
    name = os.path.basename(os.path.normpath(os.path.abspath(folder))) or "folder"
    return os.path.join(runs.predict_dir(run_dir), f"{name}.csv")


# ---------------------------------------------------------------- the command line

def pretrained_listing(path: str) -> tuple[list[str], list[data.Skipped]]:
    """One file, or folder_listing's files of a folder."""
    if os.path.isfile(os.path.expanduser(path)):
        return [os.path.expanduser(path)], []
    return folder_listing(path)


def parse_pretrained_args(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m core.predict --pretrained",
                                description="Classify images into the 1000 ImageNet classes with a pretrained model.")
    p.add_argument("--pretrained", required=True, metavar="KEY",
                   help="the classifier: mobilenet_v2 (default weights offline), vgg16, resnet50, inception_v3, "
                        "xception, efficientnet_b0")
    p.add_argument("path", metavar="FILE_OR_FOLDER", help="an image, or a folder of images (subfolders are read too)")
    p.add_argument("--top", type=int, default=5, help="how many of the most probable classes to print (default 5)")
    return p.parse_args(argv)


def pretrained_main(argv) -> int:
    """The --pretrained command line: the CSV on stdout, then one JSON line."""
    args = parse_pretrained_args(argv)
    t0 = time.time()
    try:
        # What can be checked without TensorFlow is checked before it starts (seconds saved).
        pretrained.classifier(args.pretrained)
        if args.top < 1:
            raise PredictError(N_("--top must be at least 1."))
        listing = pretrained_listing(args.path)
        devices.configure()
        with devices.native_stderr_silenced():  # TensorFlow's start-up and device probing chatter
            devices.start_tensorflow()
        predictor = Predictor.pretrained(args.pretrained, min(args.top, 1000))
        rows = predict_listing(predictor, listing)
    except (PredictError, ConfigError, WeightsUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.write(to_csv(rows, predictor.columns()))
    result = {"pretrained": args.pretrained, "path": args.path, **summary(rows, None),
              "seconds": round(time.time() - t0, 2)}
    print(json.dumps(result))
    return 0


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m core.predict",
                                description="Classify every image in a folder with a trained run's model.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder, e.g. runs/20260101-120000-scratch-scratch")
    p.add_argument("folder", metavar="FOLDER", help="images to classify (subfolders are read too)")
    p.add_argument("--out", help="the CSV to write (default RUN_DIR/predict/<folder name>.csv)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if any(a == "--pretrained" or a.startswith("--pretrained=") for a in argv):
        return pretrained_main(argv)
    args = parse_args(argv)
    devices.configure()

    t0 = time.time()
    with devices.native_stderr_silenced():  # TensorFlow's start-up and device probing chatter
        devices.start_tensorflow()
    out = args.out or default_csv(args.run_dir, args.folder)
    try:
        listing = folder_listing(args.folder)
        predictor = Predictor.from_run(args.run_dir)
        rows = predict_listing(predictor, listing,
                               progress=lambda done, total: print(f"{done}/{total} images", flush=True))
        write_csv(rows, predictor.columns(), out)
    except PredictError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result = {"run_dir": args.run_dir, "folder": args.folder, "csv": out, **summary(rows, predictor.classes),
              "seconds": round(time.time() - t0, 2)}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
