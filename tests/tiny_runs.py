"""Tiny trainings shared by the test files: the TrainConfig of a training that takes seconds, and a
tiny trained run folder (no training job needed) for the export and predict tests.

The tiny convnet of tiny_models.py is fitted in-process for a few seconds on generated circles
and squares until its predictions are confident, then saved as runs/<id>/ with the config.json
a real run has (classes, image size, resize mode, the dataset and its split settings).
"""
from __future__ import annotations

import os

import numpy as np

from core import runs

SIZE = 32


def tiny_config(data: str, runs_dir, **overrides):
    """The TrainConfig of a training that takes seconds: the scratch convnet at 48 px, batches of 8,
    2 epochs, no ImageNet weights; a test overrides what it is about."""
    from core.jobs import TrainConfig

    return TrainConfig(**{"data": data, "strategy": "scratch", "image_size": 48, "batch_size": 8, "epochs": 2,
                          "runs_dir": str(runs_dir), "weights": None, **overrides})


def make_tiny_run(base: str, epochs: int = 15) -> dict:
    """{run_dir, data, classes, images (uint8 test images), paths}: a finished run of the tiny convnet."""
    import keras

    from core import data, pipeline, runs
    from core.sample import make_shapes
    from tiny_models import tiny_convnet

    classes = ("circle", "square")
    root = os.path.join(base, "shapes")
    for split, n, seed in (("train", 24, 0), ("validation", 6, 1), ("test", 8, 2)):
        make_shapes(os.path.join(root, split), per_class=n, size=SIZE, seed=seed, classes=classes)
    ds = data.scan(root)
    x, y, _ = pipeline.load_arrays(ds.splits["train"], SIZE)
    xt, yt, paths = pipeline.load_arrays(ds.splits["test"], SIZE)
    keras.utils.set_random_seed(0)
    model = tiny_convnet(SIZE)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x.astype(np.float32), y, epochs=epochs, batch_size=16, verbose=0)
    for _ in range(9):  # then on until its test predictions are confident (CPUs differ in rounding)
        probs = model.predict(xt.astype(np.float32), verbose=0)
        if (np.abs(probs[:, 0] - probs[:, 1]) > 0.2).mean() >= 0.9:
            break
        model.fit(x.astype(np.float32), y, epochs=5, batch_size=16, verbose=0)
    run_dir = runs.create_run(os.path.join(base, "runs"), {
        "data": root, "strategy": "scratch", "base": "scratch", "image_size": SIZE, "resize": "crop",
        "seed": 0, "val_fraction": 0.15, "test_fraction": 0.15, "classes": list(ds.classes),
        "dataset": {"root": ds.root, "layout": ds.layout, "counts": ds.counts()}})
    runs.save_model(run_dir, model)
    runs.write_status(run_dir, state=runs.FINISHED, best_val_accuracy=1.0)
    return {"run_dir": run_dir, "data": root, "classes": list(ds.classes), "images": xt, "labels": yt,
            "paths": paths, "model": model}


METRICS = {"accuracy": 0.5, "loss": 0.7, "count": 2, "classes": ["a", "b"], "confusion_matrix": [[1, 0], [1, 0]],
           "evaluated_on": "test", "per_class": {"a": {"precision": 0.5, "recall": 1.0, "f1": 0.67, "support": 1},
                                                 "b": {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}}}


def finished_run(runs_dir: str) -> str:
    """A finished, evaluated run with two classes, written through core.runs' own writers."""
    d = runs.create_run(runs_dir, {"strategy": "scratch", "base": "scratch", "classes": ["a", "b"],
                                   "image_size": 32})
    runs.append_history(d, {"epoch": 1, "phase": "head", "loss": 0.7, "accuracy": 0.5, "val_loss": 0.6,
                            "val_accuracy": 0.6, "partial": False})
    runs.write_metrics(d, METRICS)
    runs.write_predictions(d, [{"path": "/x/a.png", "true": 0, "pred": 0, "probs": [0.9, 0.1]},
                               {"path": "/x/b.png", "true": 1, "pred": 0, "probs": [0.7, 0.3]}])
    runs.write_status(d, state=runs.FINISHED, best_val_accuracy=0.6)
    return d
