"""What each file of a run folder must hold: its fields, their types, which are required.

core.runs checks every run file with these as it reads it, so a file of the wrong shape (`[]` for
a config, `{"accuracy": "high"}`, a history line `5`) becomes one sentence saying what is wrong
instead of a traceback on a page. Pure functions: each returns that sentence (a core.messages
Message: English in str(), translated in the dashboard), or None when the value is fine. No I/O here.
"""
from __future__ import annotations

import json

from core.messages import Message, N_, as_message

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
# absent; fields not named here are not looked at. "What it must be" goes into a sentence: marked N_.
CONFIG = {"classes": (_names, N_("a list of class names"), False),
          "image_size": (lambda x: _count(x) and x > 0, N_("a number of pixels"), False),
          "resize": (lambda x: x in ("crop", "stretch"), N_("crop or stretch"), False),
          "strategy": (_text, N_("a name"), False), "base": (_text, N_("a name"), False),
          "dataset": (_object, N_("a JSON object"), False),
          # runs from a recipe (core.recipes); older runs have none of these
          "recipe": (_text, N_("a name"), False), "recipe_version": (_count, N_("a version number"), False),
          "recipe_changes": (lambda x: isinstance(x, list) and all(map(_text, x)), N_("a list of setting names"),
                             False)}
STATUS = {"state": (lambda x: x in STATES, Message(N_("one of {choices}"), {"choices": ", ".join(STATES)}), False),
          "started": (_number, N_("a time"), False), "updated": (_number, N_("a time"), False),
          "finished": (_number, N_("a time"), False), "pid": (_count, N_("a process id"), False),
          "best_val_accuracy": (_number, N_("a number"), False), "best_epoch": (_count, N_("an epoch number"), False),
          "error": (_text, N_("a message"), False), "result": (_object, N_("a JSON object"), False)}
RESULT = {"epochs_run": (_count, N_("a number of epochs"), False), "seconds": (_number, N_("a number"), False),
          "val_accuracy": (_number, N_("a number"), False), "test_accuracy": (_number, N_("a number"), False)}
EPOCH = {"epoch": (_count, N_("an epoch number"), True), "loss": (_number, N_("a number"), False),
         "accuracy": (_number, N_("a number"), False), "val_loss": (_number, N_("a number"), False),
         "val_accuracy": (_number, N_("a number"), False), "phase": (_text, N_("a name"), False),
         "partial": (lambda x: isinstance(x, bool), N_("true or false"), False)}
METRICS = {"accuracy": (_number, N_("a number"), True), "loss": (_number, N_("a number"), True),
           "count": (_count, N_("a number of images"), True), "classes": (_names, N_("a list of class names"), True),
           "confusion_matrix": (lambda x: isinstance(x, list), N_("a table of counts"), True),
           "per_class": (_object, N_("a JSON object"), True),
           "evaluated_on": (lambda x: x in ("test", "validation"), N_("test or validation"), False)}
PREDICTION = {"path": (_text, N_("a file path"), True), "true": (_count, N_("a class number"), True),
              "pred": (_count, N_("a class number"), True),
              "probs": (lambda x: isinstance(x, list) and all(map(_number, x)), N_("a list of numbers"), True)}


def _sentence(msgid: str, **params) -> Message:
    return Message(msgid, params)


def problem(where: str | Message, value, fields: dict) -> Message | None:
    """Why `value` is not a JSON object with these fields, or None. `where`: the file, or a
    Message naming a part of it."""
    if not isinstance(value, dict):
        return _sentence(N_("{where} holds {value}, not a JSON object."), where=where, value=shown(value))
    for key, (ok, what, required) in fields.items():
        if value.get(key) is None:
            if required:
                return _sentence(N_("{where} has no {key}."), where=where, key=key)
        elif not ok(value[key]):
            return _sentence(N_("{where}: {key} is {value}, not {what}."), where=where, key=key,
                             value=shown(value[key]), what=as_message(what))
    return None


def config_problem(config) -> Message | None:
    found = problem("config.json", config, CONFIG)
    if not found and config.get("classes") and not config.get("image_size"):
        return _sentence(N_("config.json has class names but no image_size."))
    return found


def status_problem(status) -> Message | None:
    found = problem("status.json", status, STATUS)
    if not found and status.get("result") is not None:
        return problem(_sentence(N_("status.json's result")), status["result"], RESULT)
    return found


def epoch_problem(where: str | Message, record) -> Message | None:
    return problem(where, record, EPOCH)


def metrics_problem(metrics) -> Message | None:
    found = problem("metrics.json", metrics, METRICS)
    if found:
        return found
    n, cm = len(metrics["classes"]), metrics["confusion_matrix"]
    if len(cm) != n or not all(isinstance(row, list) and len(row) == n and all(map(_count, row)) for row in cm):
        return _sentence(N_("metrics.json: confusion_matrix is not a {n}x{n} table of counts."), n=n)
    for name, scores in metrics["per_class"].items():
        if not isinstance(scores, dict) or not all(map(_number, scores.values())):
            return _sentence(N_("metrics.json: the scores of class {name} are not numbers."), name=shown(name))
    return None


def predictions_problem(records, n_classes: int | None = None) -> Message | None:
    """Why predictions.json's records cannot be used (class numbers below n_classes when given)."""
    if not isinstance(records, list):
        return _sentence(N_("predictions.json holds {value}, not a list of records."), value=shown(records))
    for i, record in enumerate(records, 1):
        found = problem(_sentence(N_("predictions.json record {i}"), i=i), record, PREDICTION)
        if found:
            return found
        if n_classes is not None and (max(record["true"], record["pred"]) >= n_classes
                                      or len(record["probs"]) != n_classes):
            return _sentence(N_("predictions.json record {i} does not match the run's {n} classes."),
                             i=i, n=n_classes)
    return None
