"""The run folder: every file of runs/<id>/, and every write, read and check of them.

    runs/<id>/config.json       the settings: TrainConfig, the classes, the device, the dataset
              status.json       state, times, process, best epoch, the result
              history.jsonl     one line per finished epoch (appended and fsynced each epoch)
              metrics.json      accuracy, loss, per-class scores, confusion matrix
              predictions.json  one record per evaluated image: path, true, pred, probs
              skipped.json      the dataset's files that could not be used, with the reason
              label.json        the name a person gave the run on the Evaluate page (a JSON string)
              model.keras       the best model
              export/           what core.export writes;  predict/  what core.predict writes

No other module names these files. JSON files are written atomically (temp file + rename),
history.jsonl is appended: a killed process never leaves half a file. A failing write (disk full,
read-only, folder deleted) removes its temporary file and raises RunWriteError, one sentence.
Every file is checked as it is read (core/run_schema.py): a run with a damaged file is still
listed, with `damaged` saying why, so one bad file never takes a page down. A run whose status
says "running" but whose process is gone reads as "interrupted"; one still "queued" (it waited for
a worker, core.jobs) reads as "not started".
"""
from __future__ import annotations

import errno
import functools
import json
import os
import re
import shutil
import socket
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime

from core import files, run_schema
from core.files import TMP_PREFIX, read_json, why_unwritable, write_json
from core.messages import Explained, Message, N_

RUNNING, FINISHED, STOPPED, FAILED, INTERRUPTED = "running", "finished", "stopped", "failed", "interrupted"
QUEUED, NOT_STARTED = "queued", "not started"  # waiting for a worker; a queued run whose server is gone
# A state written while the server lives, and how the run reads once that server's process is gone.
_GONE = {RUNNING: INTERRUPTED, QUEUED: NOT_STARTED}
DAMAGED = "damaged"  # not a state on disk: a run with a file that cannot be used reads so

CONFIG, STATUS, HISTORY = "config.json", "status.json", "history.jsonl"
METRICS, PREDICTIONS, SKIPPED, MODEL = "metrics.json", "predictions.json", "skipped.json", "model.keras"
LABEL = "label.json"
LABEL_MAX = 80  # characters: a name for a table cell and a chart legend, not a description
TRASH_PREFIX = ".deleting-"  # a run being deleted: renamed away first, so no listing sees half of it
EXPORT_DIR, PREDICT_DIR = "export", "predict"


class NotARun(Explained, ValueError):
    """A folder that is not a trained run's (no config.json with class names), in one sentence."""


class RunDamaged(NotARun):
    """A run with a file that cannot be used (wrong shape, bytes that are not text): which, and why
    (the shapes are in core/run_schema.py)."""


class RunWriteError(OSError):
    """A run file that cannot be written: "Cannot write to the runs folder …: the disk is full."
    (`message`; str() the English), with the errno of the write that failed."""

    def __init__(self, code: int | None, msgid: str, **params):
        self.message = Message(msgid, params)
        super().__init__(code, str(self.message))

    def __str__(self) -> str:
        return self.strerror


@dataclass(frozen=True)
class Run:
    """One run as read from its folder. When a file of it cannot be used, `damaged` says which and
    why (one sentence, English; `damaged_message` the same for the dashboard to translate), `state`
    is "damaged" and that file's field is empty."""
    id: str
    run_dir: str
    config: dict
    status: dict
    state: str
    history: list[dict]
    metrics: dict | None
    has_model: bool
    damaged: str | None = None
    damaged_message: Message | None = None
    label: str | None = None  # the name a person gave it (label.json); None: the run id names it

    @property
    def name(self) -> str:
        return self.label or self.id


def default_runs_dir() -> str:
    return os.environ.get("TRANSFERLAB_RUNS_DIR", "runs")


def _path(run_dir: str, name: str) -> str:
    return os.path.join(run_dir, name)


def export_dir(run_dir: str) -> str:
    return _path(run_dir, EXPORT_DIR)


def predict_dir(run_dir: str) -> str:
    return _path(run_dir, PREDICT_DIR)


def has_model(run_dir: str) -> bool:
    return os.path.exists(_path(run_dir, MODEL))


def model_saved_at(run_dir: str) -> float:
    """When model.keras was last written (a running training saves it again on each best epoch)."""
    return os.path.getmtime(_path(run_dir, MODEL))


# ---------------------------------------------------------------- writing

def _write_error(run_dir: str, e: OSError) -> RunWriteError:
    runs_dir = os.path.dirname(os.path.abspath(run_dir))
    gone_alone = e.errno == errno.ENOENT and os.path.isdir(runs_dir)  # the run's folder, not the runs folder
    if gone_alone:
        return RunWriteError(e.errno, N_("Cannot write to the run folder {folder}: {why}."),
                             folder=run_dir, why=why_unwritable(e))
    return RunWriteError(e.errno, N_("Cannot write to the runs folder {folder}: {why}."),
                         folder=runs_dir, why=why_unwritable(e))


@contextmanager
def _writing(run_dir: str):
    """Turn an OSError of a write into the RunWriteError sentence."""
    try:
        yield
    except RunWriteError:
        raise
    except OSError as e:
        raise _write_error(run_dir, e) from e


def _write_run_json(run_dir: str, name: str, obj) -> None:
    with _writing(run_dir):
        write_json(_path(run_dir, name), obj)


def write_metrics(run_dir: str, metrics: dict) -> None:
    _write_run_json(run_dir, METRICS, metrics)


def write_predictions(run_dir: str, predictions: list[dict]) -> None:
    _write_run_json(run_dir, PREDICTIONS, predictions)


def write_skipped(run_dir: str, skipped: list[dict]) -> None:
    _write_run_json(run_dir, SKIPPED, skipped)


def create_run(runs_dir: str, config: dict, state: str = RUNNING, **status) -> str:
    """Make runs/<id>/ for a new run and write its config and a status: 'running', or 'queued' for
    a training that waits for a worker (start_queued_run continues it), with `status`'s fields."""
    stem = f"{datetime.now():%Y%m%d-%H%M%S}-{config.get('strategy', 'run')}-{config.get('base', '')}"
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-")
    with _writing(os.path.join(runs_dir, stem)):
        os.makedirs(runs_dir, exist_ok=True)
        for i in range(1000):
            run_dir = os.path.join(runs_dir, stem if i == 0 else f"{stem}-{i}")
            try:
                os.makedirs(run_dir)
                break
            except FileExistsError:
                continue
    try:
        _write_run_json(run_dir, CONFIG, config)
        write_status(run_dir, **status, state=state, started=time.time(), pid=os.getpid(),
                     host=socket.gethostname())
    except BaseException:
        for name in (STATUS, CONFIG):  # a run folder with half its start is no run: leave nothing
            files.remove_quietly(_path(run_dir, name))
        with suppress(OSError):
            os.rmdir(run_dir)
        raise
    return run_dir


def start_queued_run(run_dir: str, config: dict) -> str:
    """A queued run folder (create_run(state=QUEUED)) becomes a running one: its full config and a
    'running' status, with the fields written when it was queued (its owner) kept."""
    _write_run_json(run_dir, CONFIG, config)
    write_status(run_dir, state=RUNNING, started=time.time(), pid=os.getpid(), host=socket.gethostname())
    return run_dir


def remove_queued_run(run_dir: str) -> None:
    """Remove the folder of a queued run that was cancelled before it started: it holds only its
    config and status. Quietly: a folder that cannot be removed reads as "not started" later."""
    for name in (STATUS, CONFIG):
        files.remove_quietly(_path(run_dir, name))
    with suppress(OSError):
        os.rmdir(run_dir)


def write_status(run_dir: str, **fields) -> dict:
    """Update status.json with these fields (and the time); a damaged status is replaced."""
    status = read_json(_path(run_dir, STATUS), {})
    status = {**(status if isinstance(status, dict) else {}), **fields, "updated": time.time()}
    _write_run_json(run_dir, STATUS, status)
    return status


def append_history(run_dir: str, record: dict) -> None:
    """Append one epoch to history.jsonl and fsync it; a line that cannot be written whole is cut
    off again, so the file never holds half a line that the next epoch would continue."""
    line = memoryview((json.dumps(record, default=files.jsonable) + "\n").encode("utf-8"))
    with _writing(run_dir):
        fd = os.open(_path(run_dir, HISTORY), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            start = os.fstat(fd).st_size
            try:
                while line:
                    line = line[os.write(fd, line):]
                os.fsync(fd)
            except OSError:
                with suppress(OSError):
                    os.ftruncate(fd, start)
                raise
        finally:
            os.close(fd)


def save_model(run_dir: str, model) -> None:
    """Save the model atomically as model.keras (a temp file, renamed; removed on any failure)."""
    tmp = _path(run_dir, TMP_PREFIX + MODEL)
    with _writing(run_dir):
        try:
            model.save(tmp)
            os.replace(tmp, _path(run_dir, MODEL))
        except BaseException:
            files.remove_quietly(tmp)
            raise


class RunInUse(Explained, ValueError):
    """A change to a run that its training would contradict (deleting it while it trains or waits)."""


class RunNotYours(Explained, PermissionError):
    """A change to a run that another person's browser started."""


def _check_owner(run: Run, owner: str | None) -> None:
    """owner None: unchecked (the command line, the admin token); else it must be the run's own
    (runs without an owner, from the command line or before owners existed, are anyone's)."""
    started_by = run.status.get("owner")
    if owner is not None and started_by and started_by != owner:
        raise RunNotYours(N_("Run {run} was started by someone else: only they (or the teacher's admin token) "
                             "can rename or delete it."), run=run.name)


def set_label(run_dir: str, label: str, owner: str | None = None) -> str:
    """Name the run (an empty label gives it back its id as its name); returns the label kept."""
    _check_owner(read_run(run_dir), owner)
    label = " ".join(str(label).split())[:LABEL_MAX]
    if not label:
        files.remove_quietly(_path(run_dir, LABEL))
        return ""
    _write_run_json(run_dir, LABEL, label)
    return label


def delete_run(run_dir: str, active_run_dirs=(), owner: str | None = None) -> None:
    """Delete a run and all its files. Refused (RunInUse) while it trains or waits in the queue, and
    (RunNotYours) when another owner started it. The folder is renamed away first, in one step, so
    a listing never shows half a run; then its files are removed."""
    run = read_run(run_dir, active_run_dirs)
    if run.state == RUNNING:
        raise RunInUse(N_("Run {run} is still training: stop it first, then delete it."), run=run.name)
    if run.state == QUEUED:
        raise RunInUse(N_("Run {run} is waiting in the queue: cancel it on the Train page instead."), run=run.name)
    _check_owner(run, owner)
    trash = os.path.join(os.path.dirname(os.path.abspath(run_dir)), TRASH_PREFIX + os.path.basename(run_dir))
    with _writing(run_dir):
        os.replace(run_dir, trash)
    shutil.rmtree(trash, ignore_errors=True)


# ---------------------------------------------------------------- reading and checking

_ABSENT = object()


def _parse(raw: bytes, where: str | Message):
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunDamaged(N_("{where} holds bytes that are not UTF-8 text."), where=where) from None
    except (ValueError, RecursionError):
        raise RunDamaged(N_("{where} is not valid JSON."), where=where) from None


def _load(run_dir: str, name: str):
    """The parsed JSON of one run file, _ABSENT when there is none; RunDamaged when it cannot be parsed."""
    try:
        with open(_path(run_dir, name), "rb") as f:
            return _parse(f.read(), name)
    except FileNotFoundError:
        return _ABSENT
    except OSError as e:
        raise RunDamaged(N_("{file} cannot be read ({error})."), file=name, error=str(e.strerror or e)) from None


def _checked(value, problem: Message | None):
    if problem:
        raise RunDamaged(problem)
    return value


def read_config(run_dir: str) -> dict:
    """config.json, checked; NotARun when there is none, RunDamaged when it is of the wrong shape."""
    config = _load(run_dir, CONFIG)
    if config is _ABSENT:
        raise _not_a_run(run_dir)
    return _checked(config, run_schema.config_problem(config))


def read_status(run_dir: str) -> dict:
    """status.json, checked ({} when there is none: a run killed as it started)."""
    status = _load(run_dir, STATUS)
    return {} if status is _ABSENT else _checked(status, run_schema.status_problem(status))


def read_history(run_dir: str) -> list[dict]:
    """Every epoch of history.jsonl, checked. A last line without its newline was cut by a kill
    and is left out; any other line that is not an epoch record makes the run damaged."""
    try:
        with open(_path(run_dir, HISTORY), "rb") as f:
            lines = f.read().split(b"\n")[:-1]  # after the last newline: nothing, or a cut line
    except FileNotFoundError:
        return []
    except OSError as e:
        raise RunDamaged(N_("{file} cannot be read ({error})."), file=HISTORY, error=str(e.strerror or e)) from None
    history = []
    for n, line in enumerate(lines, 1):
        where = Message(N_("{file} line {n}"), {"file": HISTORY, "n": n})
        record = _parse(line, where)
        history.append(_checked(record, run_schema.epoch_problem(where, record)))
    return history


def read_label(run_dir: str) -> str | None:
    """The name a person gave the run; None when it has none or the file is not a short text."""
    try:
        label = _load(run_dir, LABEL)
    except RunDamaged:  # a name is a nicety: a damaged one is no reason to call the run damaged
        return None
    return label[:LABEL_MAX] if isinstance(label, str) and label.strip() else None


def read_metrics(run_dir: str) -> dict | None:
    """metrics.json, checked; None when the run has no evaluation (yet)."""
    metrics = _load(run_dir, METRICS)
    return None if metrics is _ABSENT else _checked(metrics, run_schema.metrics_problem(metrics))


def read_predictions(run_dir: str, n_classes: int | None = None) -> list[dict]:
    """predictions.json ({path, true, pred, probs} per evaluated image), every record checked
    (class numbers below n_classes when given); [] when there is none."""
    records = _load(run_dir, PREDICTIONS)
    return [] if records is _ABSENT else _checked(records, run_schema.predictions_problem(records, n_classes))


@functools.lru_cache(maxsize=256)
def _predictions_problem(run_dir: str, n_classes: int | None, stamp: tuple) -> Message | None:
    """Why predictions.json cannot be used, or None; cached on the file's size and time, since
    pages list every run on each rerun and this file has a record per evaluated image."""
    try:
        read_predictions(run_dir, n_classes)
    except RunDamaged as e:
        return e.message
    return None


def _file_stamp(path: str) -> tuple:
    try:
        st = os.stat(path)
    except OSError:
        return ()
    return st.st_mtime_ns, st.st_size, st.st_ino


def process_alive(pid) -> bool:
    """Whether a process with this id runs on this machine (False for anything not a pid)."""
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError, TypeError):
        return False
    return True


def _state(status: dict, run_dir: str, active_run_dirs=()) -> str:
    """finished / stopped / failed / running / queued, or, when the process that wrote "running"
    or "queued" is gone, interrupted / not started."""
    state = status.get("state") or INTERRUPTED
    if state not in _GONE:
        return state
    same_host = status.get("host") in (None, socket.gethostname())
    if status.get("pid") == os.getpid():
        alive = os.path.abspath(run_dir) in {os.path.abspath(d) for d in active_run_dirs}
    else:
        alive = same_host and process_alive(status.get("pid"))
    return state if alive else _GONE[state]


def read_run(run_dir: str, active_run_dirs=()) -> Run:
    """Everything a page needs about one run, read from disk and checked (see Run.damaged)."""
    problems: list[Message] = []

    def read(reader, empty):
        try:
            return reader(run_dir)
        except NotARun as e:  # RunDamaged, or config.json deleted since the folder was listed
            problems.append(e.message)
        return empty

    config = read(read_config, {})
    status = read(read_status, {})
    history = read(read_history, [])
    metrics = read(read_metrics, None)
    label = read_label(run_dir)
    n_classes = len(config["classes"]) if config.get("classes") else None
    if metrics is not None and n_classes is not None and len(metrics["classes"]) != n_classes:
        problems.append(Message(N_("metrics.json has {found} classes and config.json {expected}."),
                                {"found": len(metrics["classes"]), "expected": n_classes}))
        metrics = None
    problem = _predictions_problem(run_dir, n_classes, _file_stamp(_path(run_dir, PREDICTIONS)))
    if problem:
        problems.append(problem)
    damaged = problems[0] if problems else None
    return Run(id=os.path.basename(os.path.normpath(run_dir)), run_dir=run_dir, config=config, status=status,
               state=DAMAGED if damaged else _state(status, run_dir, active_run_dirs), history=history,
               metrics=metrics, has_model=has_model(run_dir), damaged=damaged and str(damaged),
               damaged_message=damaged, label=label)


def open_run(run_dir: str) -> Run:
    """The trained run in run_dir, for the command lines: NotARun when run_dir is not one (no
    config.json with class names), RunDamaged (a NotARun) when one of its files cannot be used."""
    if not os.path.isfile(_path(run_dir, CONFIG)):
        raise _not_a_run(run_dir)
    run = read_run(run_dir)
    if run.damaged:
        raise RunDamaged(N_("Run {run} is damaged: {why}"), run=run.id, why=run.damaged_message)
    if not run.config.get("classes"):
        raise _not_a_run(run_dir)
    return run


def _not_a_run(run_dir: str) -> NotARun:
    return NotARun(N_("Not a run folder: {folder} (no config.json with class names). "
                      "Give the folder of one run, e.g. runs/20260101-120000-scratch-scratch."), folder=run_dir)


def list_runs(runs_dir: str | None = None, active_run_dirs=()) -> list[Run]:
    """All runs, newest first (a run with a damaged file too, marked so)."""
    runs_dir = runs_dir or default_runs_dir()
    if not os.path.isdir(runs_dir):
        return []
    dirs = [e.path for e in os.scandir(runs_dir)
            if e.is_dir() and not e.name.startswith(".") and os.path.exists(_path(e.path, CONFIG))]
    return [read_run(d, active_run_dirs) for d in sorted(dirs, reverse=True)]


# ---------------------------------------------------------------- the model

class ModelUnavailable(Explained, ValueError):
    """A model.keras that cannot be loaded (damaged, or holding code that safe mode refuses)."""


class ModelMissing(Explained, FileNotFoundError):
    """A run without a model.keras: it stopped or failed before its first epoch finished."""


def load_model(run_dir: str):
    """The run's best model, loaded in Keras' safe mode (no code from the file is run).

    ModelMissing (a FileNotFoundError) when the run has no model; ModelUnavailable when the file
    cannot be loaded.
    """
    import keras

    import core.models  # noqa: F401  registers the Preprocess layer

    path = _path(run_dir, MODEL)
    if not os.path.exists(path):
        raise ModelMissing(N_("Run {run} has no saved model (it stopped or failed before its first epoch "
                              "finished)."), run=os.path.basename(run_dir))
    too_large = files.zip_unpacks_too_large(path)
    if too_large:
        raise ModelUnavailable(N_("The model of run {run} cannot be loaded: {why}."),
                               run=os.path.basename(os.path.normpath(run_dir)), why=too_large)
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # noqa: BLE001  whatever is wrong with the file, one readable sentence
        run = os.path.basename(os.path.normpath(run_dir))
        if "safe_mode" in str(e):
            raise ModelUnavailable(N_("The model of run {run} cannot be loaded: it contains Python code (a Lambda "
                                      "layer or similar), which safe mode never runs."), run=run) from None
        raise ModelUnavailable(N_("The model of run {run} cannot be loaded: the file is damaged or not a Keras "
                                  "model ({error})."), run=run, error=f"{type(e).__name__}: {str(e)[:200]}") from None
