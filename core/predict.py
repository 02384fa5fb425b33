"""Predict: a trained run's model on new images, one row per file.

    python -m core.predict RUN_DIR FOLDER [--out CSV]

Every file under FOLDER (recursively, hidden files left out) is opened with core.data's checks
and decoded exactly as the run's training images were (size, crop or stretch). A file that
cannot be used becomes a row with the reason in the `error` column instead of stopping the rest.
The CSV has the columns path, predicted, confidence, prob_<class> (one per class, in the run's
class order) and error. Nothing is written into FOLDER: the CSV goes to --out, by default
RUN_DIR/predict/<folder name>.csv. The last stdout line is one JSON object; exit code 0 on
success, 2 with a one-line error on bad input (no such run, no model, no such folder, no files,
unwritable CSV).

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

from core import data, devices, files, images, runs
from core.messages import Explained, N_, message_of

CHUNK = 256  # images decoded and predicted at a time: memory stays flat on a big folder


class PredictError(Explained, ValueError):
    """Prediction cannot start (bad run, folder or output), with a sentence saying what to do."""


@dataclass
class Predictor:
    """A run's model with what is needed to feed it: class names, image size, resize mode."""
    model: object
    classes: list[str]
    image_size: int
    resize: str = "crop"

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

    def columns(self) -> list[str]:
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
    out = {"path": name, "predicted": "", "confidence": None}
    out.update({f"prob_{c}": None for c in predictor.classes})
    if probs is not None:
        k = int(np.argmax(probs))
        out["predicted"], out["confidence"] = predictor.classes[k], round(float(probs[k]), 6)
        out.update({f"prob_{c}": round(float(p), 6) for c, p in zip(predictor.classes, probs)})
    out["error"] = error
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


def summary(rows: list[dict], classes: list[str]) -> dict:
    """{images, predicted, errors, counts per class}."""
    counts = {c: 0 for c in classes}
    for r in rows:
        if r["predicted"]:
            counts[r["predicted"]] += 1
    errors = sum(1 for r in rows if r["error"])
    return {"images": len(rows), "predicted": len(rows) - errors, "errors": errors, "counts": counts}


def default_csv(run_dir: str, folder: str) -> str:
    name = os.path.basename(os.path.normpath(os.path.abspath(folder))) or "folder"
    return os.path.join(runs.predict_dir(run_dir), f"{name}.csv")


# ---------------------------------------------------------------- the command line

def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m core.predict",
                                description="Classify every image in a folder with a trained run's model.")
    p.add_argument("run_dir", metavar="RUN_DIR", help="the run folder, e.g. runs/20260101-120000-scratch-scratch")
    p.add_argument("folder", metavar="FOLDER", help="images to classify (subfolders are read too)")
    p.add_argument("--out", help="the CSV to write (default RUN_DIR/predict/<folder name>.csv)")
    return p.parse_args(argv)


def main(argv=None) -> int:
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
