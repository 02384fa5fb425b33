"""Issue 6, interruptions: kill -9 during training, stop at every phase (and twice), start twice at
once, and errors in the middle of a training. Every case ends with a run folder that says what
happened and keeps what was learnt.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT
from core import runs
from core.jobs import Job, JobRegistry
from tiny_runs import tiny_config

pytestmark = pytest.mark.timeout(240)


def _fine_tune(data, runs_dir, **kw):
    """Fine-tuning a MobileNet (alpha 0.25) without ImageNet weights: both phases in seconds."""
    return tiny_config(data, runs_dir, strategy="fine-tune", base="mobilenet_025", image_size=32, epochs=1,
                       fine_tune_epochs=1, unfreeze=6, **kw)


def _only_run(runs_dir) -> runs.Run:
    listed = runs.list_runs(str(runs_dir))
    assert len(listed) == 1, [r.id for r in listed]
    return listed[0]


# ---------------------------------------------------------------- kill -9

KILLED_SCRIPT = textwrap.dedent("""
    # A training started exactly as the Train page starts it: core.jobs.REGISTRY.start(config).
    import sys, time
    sys.path.insert(0, {root!r})
    from core.jobs import REGISTRY, TrainConfig
    job = REGISTRY.start(TrainConfig(data={data!r}, strategy="scratch", image_size=48, batch_size=4,
                                     epochs=500, runs_dir={runs!r}, weights=None))
    while job.active:
        time.sleep(0.2)
""")


@pytest.mark.slow
def test_kill_9_during_training_leaves_an_interrupted_run_with_its_history_and_model(shapes, tmp_path):
    runs_dir = tmp_path / "runs"
    script = KILLED_SCRIPT.format(root=str(ROOT), data=shapes, runs=str(runs_dir))
    proc = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        deadline = time.time() + 180
        finished = 0
        while time.time() < deadline and proc.poll() is None:
            history = list(runs_dir.glob("*/history.jsonl"))
            finished = len(history[0].read_text().splitlines()) if history else 0
            if finished >= 2:
                break
            time.sleep(0.2)
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert finished >= 2, "two epochs did not finish in time"
        os.kill(proc.pid, signal.SIGKILL)  # no handler, no cleanup: as a crash or an OOM kill
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    run = _only_run(runs_dir)
    assert run.state == "interrupted"
    assert run.status["state"] == "running"  # what the file says: the reader knows better
    # Every epoch that finished before the kill is there, in order, complete; every line parses
    # (the last may be cut by the kill: the reader skips it).
    epochs = [h["epoch"] for h in run.history]
    assert len(epochs) >= finished and epochs == list(range(1, len(epochs) + 1))
    assert all(h["val_accuracy"] is not None and not h["partial"] for h in run.history)
    lines = (Path(run.run_dir) / "history.jsonl").read_text().split("\n")
    assert all(json.loads(line) for line in lines[:-1])
    # The best checkpoint loads (safe mode) and predicts.
    assert run.has_model and 1 <= run.status["best_epoch"] <= len(epochs)
    model = runs.load_model(run.run_dir)
    probs = model.predict(np.zeros((2, 48, 48, 3), np.float32), verbose=0)
    assert probs.shape == (2, 3) and np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    # No JSON file in the run folder is half-written.
    for name in ("config.json", "status.json"):
        json.loads((Path(run.run_dir) / name).read_text())


# ---------------------------------------------------------------- stop, at every phase, twice

def _stop_twice(job: Job) -> None:
    job.request_stop()
    job.request_stop()


def _stop_at_phase(job: Job, phase: str) -> None:
    real = job.set_phase

    def set_phase(name):
        real(name)
        if name == phase:
            _stop_twice(job)
    job.set_phase = set_phase


def _stop_after_first_batch_of(job: Job, phase: str) -> None:
    real = job.add_batch

    def add_batch(record):
        real(record)
        if record["phase"] == phase:
            _stop_twice(job)
    job.add_batch = add_batch


@pytest.mark.parametrize("where, expect_model", [
    ("scan", False), ("decode", False), ("features (train)", False),
    ("batch:head", True), ("batch:fine-tune", True), ("evaluate", True),
])
def test_stop_pressed_twice_at_any_phase_ends_in_one_stopped_run(split_shapes, runs_dir, where, expect_model):
    job = Job(_fine_tune(split_shapes, runs_dir))
    if where.startswith("batch:"):
        _stop_after_first_batch_of(job, where.split(":")[1])
    else:
        _stop_at_phase(job, where)
    result = job.run()
    assert job.state == "stopped", (job.state, job.error)
    assert job.error is None
    assert sum("Stop requested" in line for line in map(str, job.logs)) == 1  # the second press changed nothing
    run = _only_run(runs_dir)
    assert run.state == "stopped" and run.run_dir == job.run_dir
    assert (result or {}).get("run_dir", job.run_dir) == job.run_dir
    assert run.has_model == expect_model
    if expect_model:  # what was learnt is kept and evaluated
        assert run.metrics and run.metrics["count"] == 12
        runs.load_model(run.run_dir)
    if where == "batch:fine-tune":  # the stop came after the whole head phase: its epochs are kept
        assert run.history[0]["phase"] == "head" and not run.history[0]["partial"]
        assert run.history[-1]["phase"] == "fine-tune" and run.history[-1]["partial"]
    if where == "evaluate":  # training was over: every epoch is there, the evaluation completes
        assert [h["phase"] for h in run.history] == ["head", "fine-tune"] and result["epochs_run"] == 2


def test_stop_after_the_job_ended_changes_nothing(shapes, runs_dir):
    job = Job(tiny_config(shapes, runs_dir, epochs=1))
    job.run()
    assert job.state == "finished"
    _stop_twice(job)
    assert job.state == "finished" and _only_run(runs_dir).state == "finished"


def test_start_pressed_twice_at_once_queues_two_jobs_that_run_one_after_the_other(shapes, runs_dir):
    registry = JobRegistry(workers=1)
    barrier = threading.Barrier(2)
    outcomes = []

    def press():
        barrier.wait()
        outcomes.append(registry.start(tiny_config(shapes, runs_dir, epochs=1)))

    presses = [threading.Thread(target=press) for _ in range(2)]
    for t in presses:
        t.start()
    for t in presses:
        t.join(30)
    assert len(outcomes) == 2 and all(isinstance(o, Job) for o in outcomes)
    first, second = sorted(outcomes, key=lambda j: j.ticket)
    first.thread.join(120)
    deadline = time.time() + 30
    while second.thread is None and time.time() < deadline:
        time.sleep(0.05)
    second.thread.join(120)
    assert (first.state, second.state) == ("finished", "finished")
    assert sorted(r.state for r in runs.list_runs(runs_dir)) == ["finished", "finished"]  # a run folder each


# ---------------------------------------------------------------- errors in the middle of a run

def test_out_of_memory_in_the_second_epoch_fails_readably_and_keeps_the_first(shapes, runs_dir):
    import tensorflow as tf

    registry = JobRegistry()
    job = registry.start(tiny_config(shapes, runs_dir, epochs=5))
    real = job.add_batch

    def add_batch(record):
        if record["epoch"] == 2:
            raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape [8,48,48,32]")
        real(record)
    job.add_batch = add_batch
    job.thread.join(120)
    assert job.state == "failed"
    assert job.error.startswith("Out of memory: try a smaller batch size or image size")
    assert not job.input_error and registry.active() is None  # a new training can start
    run = _only_run(runs_dir)
    assert run.state == "failed" and run.status["error"] == job.error
    assert [h["epoch"] for h in run.history] == [1]
    assert run.has_model and run.status["best_epoch"] == 1
    runs.load_model(run.run_dir)


def test_a_file_vanishing_during_the_run_is_skipped_with_its_reason(shapes, runs_dir):
    job = Job(tiny_config(shapes, runs_dir, epochs=1))
    gone = os.path.join(shapes, "circle", sorted(os.listdir(os.path.join(shapes, "circle")))[0])
    real = job.set_phase

    def set_phase(name):
        if name == "decode":  # after the scan checked every file, before they are read for training
            os.remove(gone)
        real(name)
    job.set_phase = set_phase
    result = job.run()
    assert job.state == "finished", job.error
    assert result["skipped"] == 1
    skipped = json.loads((Path(result["run_dir"]) / "skipped.json").read_text())
    assert skipped[0]["path"] == gone and skipped[0]["reason"] == "cannot be read (No such file or directory)"


def test_the_dataset_vanishing_before_the_job_scans_it_fails_readably(shapes, runs_dir):
    registry = JobRegistry()
    os.rename(shapes, shapes + "-moved")
    job = registry.start(tiny_config(shapes, runs_dir))
    job.thread.join(60)
    assert job.state == "failed" and job.input_error
    assert job.error.startswith("Folder not found")


def test_a_full_disk_while_writing_the_history_fails_readably(shapes, runs_dir, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(runs, "append_history", full)
    job = Job(tiny_config(shapes, runs_dir))
    job.run()
    assert job.state == "failed" and "No space left on device" in job.error
    assert _only_run(runs_dir).state == "failed"


# ---------------------------------------------------------------- TensorFlow's threads

def _tf_compute_threads(value: str | None) -> tuple[int, str]:
    """(TensorFlow's compute threads after its first op, stderr) in a fresh process that imports
    core.devices.configure() first, as app.py does, with TRANSFERLAB_TF_THREADS=value."""
    code = ("import os, sys; sys.path.insert(0, '.'); import core.devices; core.devices.configure(); import tensorflow as tf\n"
            "tf.matmul(tf.ones((64, 64)), tf.ones((64, 64))).numpy()\n"
            "names = [open(f'/proc/self/task/{t}/comm').read().strip() for t in os.listdir('/proc/self/task')]\n"
            "print(names.count('tf_Compute'))")
    env = {k: v for k, v in os.environ.items() if k not in ("TRANSFERLAB_TF_THREADS", "TF_NUM_INTRAOP_THREADS",
                                                            "TF_NUM_INTEROP_THREADS")}
    if value is not None:
        env["TRANSFERLAB_TF_THREADS"] = value
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert p.returncode == 0, p.stderr[-2000:]
    return int(p.stdout.strip().splitlines()[-1]), p.stderr


@pytest.mark.slow  # two fresh TensorFlow imports
def test_tf_threads_setting_limits_tensorflow_pools():
    if (os.cpu_count() or 1) < 2:
        pytest.skip("one core: nothing to limit")
    limited, _ = _tf_compute_threads("1")
    assert limited == 1
    # A value that is no number is reported and ignored: TensorFlow's default, a thread per core.
    default, stderr = _tf_compute_threads("lots")
    assert default == min(os.cpu_count(), default) >= 2
    assert "TRANSFERLAB_TF_THREADS must be a number of threads or 'auto', not 'lots'. Using TensorFlow's default." \
        in stderr
