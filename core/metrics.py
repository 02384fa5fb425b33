"""How good a model is on a split: loss, accuracy, the confusion matrix and per-class scores.

Plain numpy on the probabilities the model predicted, batch by batch (no float32 copy of a split).
"""
from __future__ import annotations

import numpy as np

from core import pipeline

EPSILON = 1e-7  # probabilities are clipped to it before the log of the loss


def evaluate(model, images, labels: np.ndarray, paths: list[str], classes: list[str],
             batch_size: int = 64, progress=None) -> tuple[dict, list[dict]]:
    """(metrics, per-image predictions) on a split; `progress(done, total)` after each batch."""
    probs = predict_all(model, pipeline.batch_dataset(images, labels, batch_size), len(labels),
                        progress and (lambda batch: progress(min(len(labels), (batch + 1) * batch_size), len(labels))))
    return metrics_from_probs(probs, labels, classes), [
        {"path": p, "true": int(t), "pred": int(np.argmax(pr)), "probs": [round(float(v), 5) for v in pr]}
        for p, t, pr in zip(paths, labels, probs)]


def predict_all(model, dataset, n: int, on_batch=None) -> np.ndarray:
    """Probabilities of the first n samples of a batch_dataset, in order (it may be padded).
    `on_batch(index)` is called after each batch."""
    import keras

    callbacks = [keras.callbacks.LambdaCallback(on_predict_batch_end=lambda b, logs: on_batch(b))] if on_batch else []
    return np.asarray(model.predict(dataset, verbose=0, callbacks=callbacks))[:n].astype(np.float32)


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, n_classes: int) -> np.ndarray:
    """cm[true, predicted] = how many samples of class `true` were predicted as `predicted`."""
    flat = np.asarray(labels, np.int64) * n_classes + np.asarray(predictions, np.int64)
    return np.bincount(flat, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def per_class_scores(cm: np.ndarray, classes: list[str]) -> dict:
    """Precision, recall, F1 and support of each class (0 where a score is undefined)."""
    tp = np.diag(cm).astype(float)
    predicted, actual = cm.sum(axis=0), cm.sum(axis=1)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(tp), where=both > 0)
    return {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                "support": int(actual[i])} for i, c in enumerate(classes)}


def metrics_from_probs(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    labels = np.asarray(labels)
    pred = probs.argmax(axis=1)
    n = len(labels)
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(n), labels], EPSILON, 1)))) if n else None
    cm = confusion_matrix(labels, pred, len(classes))
    return {"loss": loss, "accuracy": float((pred == labels).mean()) if n else None,
            "count": int(n), "classes": classes, "per_class": per_class_scores(cm, classes),
            "confusion_matrix": cm.tolist()}
