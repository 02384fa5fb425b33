"""What runs inside model.fit: the job's callback and the best-model checkpointer."""
from __future__ import annotations

import time

import keras
import numpy as np

from core import runs
from core.metrics import metrics_from_probs, predict_all


class JobCallback(keras.callbacks.Callback):
    """Publishes metrics, honours stop within one batch, validates and checkpoints each epoch."""

    def __init__(self, job, phase: str, steps: int, epochs: int, val_data, val_labels, on_best,
                 epoch_offset: int = 0, best: float = -1.0):
        super().__init__()
        self.job, self.phase, self.steps, self.epochs = job, phase, steps, epochs
        self.val_data, self.val_labels = val_data, val_labels
        self.on_best, self.epoch_offset = on_best, epoch_offset
        self.best = best  # the validation accuracy an epoch must beat to be checkpointed
        self.epochs_done = 0
        self._epoch, self._epoch_start, self._last_batch = 0, 0.0, -1

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._epoch_start, self._last_batch = epoch, time.time(), -1

    def on_train_batch_end(self, batch, logs=None):
        logs = logs or {}
        self._last_batch = batch
        self.job.add_batch({"phase": self.phase, "epoch": self.epoch_offset + self._epoch + 1,
                            "batch": batch + 1, "step": self._epoch * self.steps + batch + 1,
                            "loss": float(logs.get("loss", np.nan)),
                            "accuracy": float(logs.get("accuracy", np.nan)), "time": time.time()})
        self.job.set_progress(self._epoch * self.steps + batch + 1, self.epochs * self.steps)
        if self.job.stop_requested:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None):
        logs = dict(logs or {})
        partial = self.job.stop_requested and self._last_batch + 1 < self.steps
        record = {"phase": self.phase, "epoch": self.epoch_offset + epoch + 1,
                  "loss": float(logs.get("loss", np.nan)), "accuracy": float(logs.get("accuracy", np.nan)),
                  "val_loss": None, "val_accuracy": None, "partial": partial,
                  "seconds": round(time.time() - self._epoch_start, 3)}
        if not self.job.stop_requested:  # a stop skips validation: stop means now
            probs = predict_all(self.model, self.val_data, len(self.val_labels))
            val = metrics_from_probs(probs, self.val_labels, [""] * probs.shape[-1])
            record["val_loss"], record["val_accuracy"] = val["loss"], val["accuracy"]
            if record["val_accuracy"] > self.best:
                self.best = record["val_accuracy"]
                self.on_best(record)
        if not partial:
            self.epochs_done += 1
        self.job.add_epoch(record)


class Checkpointer:
    """Keeps the best weights in memory and writes the model to disk at most every min_interval s."""

    def __init__(self, run_dir: str, model, before_save=None, min_interval: float = 5.0):
        self.run_dir, self.model, self.before_save = run_dir, model, before_save
        self.min_interval = min_interval
        self.best_weights = None
        self.best_record = None
        self._saved_record = None
        self._last_save = 0.0

    def __call__(self, record: dict, weights_of=None) -> None:
        self.best_weights = (weights_of or self.model).get_weights()
        self.best_record = record
        if time.time() - self._last_save >= self.min_interval:
            self.flush()

    def flush(self) -> None:
        if self.best_record is None or self._saved_record is self.best_record:
            return
        if self.before_save:
            self.before_save(self.best_weights)
        else:
            self.model.set_weights(self.best_weights)
        runs.save_model(self.run_dir, self.model)
        runs.write_status(self.run_dir, best_epoch=self.best_record["epoch"],
                          best_phase=self.best_record["phase"], best_val_accuracy=self.best_record["val_accuracy"])
        self._saved_record = self.best_record
        self._last_save = time.time()
