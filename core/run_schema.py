"""What each file of a run folder must hold: its fields, their types, which are required.

core.runs checks every run file with these as it reads it, so a file of the wrong shape (`[]` for
a config, `{"accuracy": "high"}`, a history line `5`) becomes one sentence saying what is wrong
instead of a traceback on a page. Pure functions: each returns that sentence, or None when the
value is fine. No I/O here.
"""
from __future__ import annotations

import json

STATES = ("running", "finished", "stopped", "failed", "interrupted")


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and x >= 0


def _names(x) -> bool:
    return isinstance(x, list) and bool(x) and all(isinstance(c, str) for c in x)


def _text(x) -> bool:
    return isinstance(x, str)


def _object(x) -> bool:
    return isinstance(x, dict)


def shown(x) -> str:
    """A value as it is in the file, cut to a readable length."""
    text = json.dumps(x)
    return text if len(text) <= 40 else text[:37] + "…"


# Each file's fields: key -> (check, what it must be, required). A field that is null counts as
# absent; fields not named here are not looked at.
CONFIG = {"classes": (_names, "a list of class names", False),
          "image_size": (lambda x: _count(x) and x > 0, "a number of pixels", False),
          "resize": (lambda x: x in ("crop", "stretch"), "crop or stretch", False),
          "strategy": (_text, "a name", False), "base": (_text, "a name", False),
          "dataset": (_object, "a JSON object", False)}
STATUS = {"state": (lambda x: x in STATES, "one of " + ", ".join(STATES), False),
          "started": (_number, "a time", False), "updated": (_number, "a time", False),
          "finished": (_number, "a time", False), "pid": (_count, "a process id", False),
          "best_val_accuracy": (_number, "a number", False), "best_epoch": (_count, "an epoch number", False),
          "error": (_text, "a message", False), "result": (_object, "a JSON object", False)}
RESULT = {"epochs_run": (_count, "a number of epochs", False), "seconds": (_number, "a number", False),
          "val_accuracy": (_number, "a number", False), "test_accuracy": (_number, "a number", False)}
EPOCH = {"epoch": (_count, "an epoch number", True), "loss": (_number, "a number", False),
         "accuracy": (_number, "a number", False), "val_loss": (_number, "a number", False),
         "val_accuracy": (_number, "a number", False), "phase": (_text, "a name", False),
         "partial": (lambda x: isinstance(x, bool), "true or false", False)}
METRICS = {"accuracy": (_number, "a number", True), "loss": (_number, "a number", True),
           "count": (_count, "a number of images", True), "classes": (_names, "a list of class names", True),
           "confusion_matrix": (lambda x: isinstance(x, list), "a table of counts", True),
           "per_class": (_object, "a JSON object", True),
           "evaluated_on": (lambda x: x in ("test", "validation"), "test or validation", False)}
PREDICTION = {"path": (_text, "a file path", True), "true": (_count, "a class number", True),
              "pred": (_count, "a class number", True),
              "probs": (lambda x: isinstance(x, list) and all(map(_number, x)), "a list of numbers", True)}


def problem(where: str, value, fields: dict) -> str | None:
    """Why `value` is not a JSON object with these fields, or None."""
    if not isinstance(value, dict):
        return f"{where} holds {shown(value)}, not a JSON object."
    for key, (ok, what, required) in fields.items():
        if value.get(key) is None:
            if required:
                return f"{where} has no {key}."
        elif not ok(value[key]):
            return f"{where}: {key} is {shown(value[key])}, not {what}."
    return None


def config_problem(config) -> str | None:
    found = problem("config.json", config, CONFIG)
    if not found and config.get("classes") and not config.get("image_size"):
        return "config.json has class names but no image_size."
    return found


def status_problem(status) -> str | None:
    found = problem("status.json", status, STATUS)
    if not found and status.get("result") is not None:
        return problem("status.json's result", status["result"], RESULT)
    return found


def epoch_problem(where: str, record) -> str | None:
    return problem(where, record, EPOCH)


def metrics_problem(metrics) -> str | None:
    found = problem("metrics.json", metrics, METRICS)
    if found:
        return found
    n, cm = len(metrics["classes"]), metrics["confusion_matrix"]
    if len(cm) != n or not all(isinstance(row, list) and len(row) == n and all(map(_count, row)) for row in cm):
        return f"metrics.json: confusion_matrix is not a {n}x{n} table of counts."
    for name, scores in metrics["per_class"].items():
        if not isinstance(scores, dict) or not all(map(_number, scores.values())):
            return f"metrics.json: the scores of class {shown(name)} are not numbers."
    return None


def predictions_problem(records, n_classes: int | None = None) -> str | None:
    """Why predictions.json's records cannot be used (class numbers below n_classes when given)."""
    if not isinstance(records, list):
        return f"predictions.json holds {shown(records)}, not a list of records."
    for i, record in enumerate(records, 1):
        found = problem(f"predictions.json record {i}", record, PREDICTION)
        if found:
            return found
        if n_classes is not None and (max(record["true"], record["pred"]) >= n_classes
                                      or len(record["probs"]) != n_classes):
            return f"predictions.json record {i} does not match the run's {n_classes} classes."
    return None
