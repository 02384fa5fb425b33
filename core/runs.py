"""The run folder: runs/<id>/ with config.json, history.jsonl, status.json, model.keras, metrics.json.

Every JSON file is written atomically (temp file + rename), history.jsonl is appended and
flushed each epoch, so a killed process never leaves a half-written file behind. A run whose
status still says "running" but whose process is gone reads as "interrupted".
"""
from __future__ import annotations

import json
import os
import re
import socket
import tempfile
import time
from datetime import datetime

RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED = "running", "finished", "stopped", "failed", "interrupted"


def default_runs_dir() -> str:
    return os.environ.get("TRANSFERLAB_RUNS_DIR", "runs")


def write_json(path: str, obj) -> None:
    """Write JSON atomically: readers see the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=1, default=_jsonable)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    return str(o)


def read_json(path: str, default=None):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def create_run(runs_dir: str, config: dict) -> str:
    """Make runs/<id>/ for a new run and write its config and a 'running' status."""
    os.makedirs(runs_dir, exist_ok=True)
    stem = f"{datetime.now():%Y%m%d-%H%M%S}-{config.get('strategy', 'run')}-{config.get('base', '')}"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-")
    for i in range(1000):
        run_dir = os.path.join(runs_dir, stem if i == 0 else f"{stem}-{i}")
        try:
            os.makedirs(run_dir)
            break
        except FileExistsError:
            continue
    write_json(os.path.join(run_dir, "config.json"), config)
    write_status(run_dir, state=RUNNING, started=time.time(), pid=os.getpid(), host=socket.gethostname())
    return run_dir


def write_status(run_dir: str, **fields) -> dict:
    status = read_json(os.path.join(run_dir, "status.json"), {}) or {}
    status.update(fields, updated=time.time())
    write_json(os.path.join(run_dir, "status.json"), status)
    return status


def append_history(run_dir: str, record: dict) -> None:
    with open(os.path.join(run_dir, "history.jsonl"), "a", encoding="utf-8") as f:
        f.write(json.dumps(record, default=_jsonable) + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_history(run_dir: str) -> list[dict]:
    """Every complete line of history.jsonl (a line cut by a kill is ignored)."""
    out = []
    try:
        with open(os.path.join(run_dir, "history.jsonl"), encoding="utf-8") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def _process_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def run_state(run_dir: str, active_run_dirs=()) -> str:
    """finished / stopped / failed / running / interrupted (running, but its process is gone)."""
    status = read_json(os.path.join(run_dir, "status.json"), {}) or {}
    state = status.get("state", INTERRUPTED)
    if state != RUNNING:
        return state
    same_host = status.get("host") in (None, socket.gethostname())
    if status.get("pid") == os.getpid():
        alive = os.path.abspath(run_dir) in {os.path.abspath(d) for d in active_run_dirs}
    else:
        alive = same_host and _process_alive(status.get("pid"))
    return RUNNING if alive else INTERRUPTED


def read_run(run_dir: str, active_run_dirs=()) -> dict:
    """Everything a page needs about one run, read from disk."""
    return {
        "run_dir": run_dir,
        "id": os.path.basename(os.path.normpath(run_dir)),
        "config": read_json(os.path.join(run_dir, "config.json"), {}) or {},
        "status": read_json(os.path.join(run_dir, "status.json"), {}) or {},
        "state": run_state(run_dir, active_run_dirs),
        "history": read_history(run_dir),
        "metrics": read_json(os.path.join(run_dir, "metrics.json")),
        "has_model": os.path.exists(os.path.join(run_dir, "model.keras")),
    }


def list_runs(runs_dir: str | None = None, active_run_dirs=()) -> list[dict]:
    """All runs, newest first."""
    runs_dir = runs_dir or default_runs_dir()
    if not os.path.isdir(runs_dir):
        return []
    dirs = [e.path for e in os.scandir(runs_dir)
            if e.is_dir() and os.path.exists(os.path.join(e.path, "config.json"))]
    return [read_run(d, active_run_dirs) for d in sorted(dirs, reverse=True)]


def save_model(run_dir: str, model) -> None:
    """Save the model atomically as model.keras."""
    tmp = os.path.join(run_dir, ".tmp-model.keras")
    model.save(tmp)
    os.replace(tmp, os.path.join(run_dir, "model.keras"))


class ModelUnavailable(ValueError):
    """A model.keras that cannot be loaded (damaged, or holding code that safe mode refuses)."""


def load_model(run_dir: str):
    """The run's best model, loaded in Keras' safe mode (no code from the file is run).

    FileNotFoundError when the run has no model; ModelUnavailable when the file cannot be loaded.
    """
    import keras

    import core.models  # noqa: F401  registers the Preprocess layer

    path = os.path.join(run_dir, "model.keras")
    if not os.path.exists(path):
        raise FileNotFoundError(f"Run {os.path.basename(run_dir)} has no saved model (it stopped or "
                                "failed before its first epoch finished).")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # noqa: BLE001  whatever is wrong with the file, one readable sentence
        if "safe_mode" in str(e):
            why = "it contains Python code (a Lambda layer or similar), which safe mode never runs"
        else:
            why = f"the file is damaged or not a Keras model ({type(e).__name__}: {str(e)[:200]})"
        raise ModelUnavailable(f"The model of run {os.path.basename(os.path.normpath(run_dir))} cannot be "
                               f"loaded: {why}.") from None
