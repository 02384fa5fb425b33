"""Ways to damage a run folder's files (issue 18, part 3), shared by the run and page tests.

DAMAGE maps a case name to (a function that damages the run folder it is given, words the
one-sentence reason must hold). ISSUE_CASES are the cases the issue names.
"""
from __future__ import annotations

import json
import os


def replace(name: str, content: bytes):
    def damage(run_dir: str) -> None:
        with open(os.path.join(run_dir, name), "wb") as f:
            f.write(content)
    return damage


def append(name: str, content: bytes):
    def damage(run_dir: str) -> None:
        with open(os.path.join(run_dir, name), "ab") as f:
            f.write(content)
    return damage


# The cases of issue 18 part 3: (how the file is damaged, the words the reason must hold).
DAMAGE = {
    "history-not-utf8": (append("history.jsonl", b'{"epoch": 2, "loss": 0.5, "phase": "h\xff\xfe"}\n'),
                         "history.jsonl line 2 holds bytes that are not UTF-8"),
    "status-a-list": (replace("status.json", b"[1, 2]"), "status.json holds [1, 2], not a JSON object"),
    "config-a-list": (replace("config.json", b"[]"), "config.json holds [], not a JSON object"),
    "metrics-accuracy-high": (replace("metrics.json", b'{"accuracy": "high"}'),
                              'metrics.json: accuracy is "high", not a number'),
    "history-line-5": (append("history.jsonl", b"5\n"), "history.jsonl line 2 holds 5, not a JSON object"),
    "prediction-missing-keys": (replace("predictions.json", b'[{"path": "/x/a.png", "true": 0}]'),
                                "predictions.json record 1 has no pred"),
    "prediction-class-out-of-range": (replace("predictions.json", b'[{"path": "p", "true": 7, "pred": 0, '
                                                                   b'"probs": [0.5, 0.5]}]'),
                                      "does not match the run's 2 classes"),
    "metrics-matrix-wrong-size": (replace("metrics.json", json.dumps({
        "accuracy": 0.5, "loss": 0.7, "count": 2, "classes": ["a", "b"], "confusion_matrix": [[1]],
        "per_class": {}}).encode()), "confusion_matrix is not a 2x2 table"),
    "status-not-json": (replace("status.json", b'{"state": "fini'), "status.json is not valid JSON"),
}

ISSUE_CASES = ["history-not-utf8", "status-a-list", "config-a-list", "metrics-accuracy-high", "history-line-5",
               "prediction-missing-keys"]
