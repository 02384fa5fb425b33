"""core.jobs: the registry under concurrent browser sessions, and jobs that always end, even when
nothing can be written to the run folder any more (disk full, read-only, folder deleted)."""
from __future__ import annotations

import errno
import os
import random
import sys
import threading
import time
from pathlib import Path

import pytest

from core import jobs, runs
from core.jobs import JobRegistry, NotYours, TrainConfig, write_failure_sentence
from tiny_runs import tiny_config

FINAL = ("finished", "stopped", "failed", "cancelled")


# ---------------------------------------------------------------- many sessions, one registry

@pytest.fixture
def fast_thread_switches():
    """Switch threads every microsecond instead of every 5 ms, so that races show within seconds."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.fixture
def thread_switch_in_job_active(monkeypatch):
    """Let other threads run inside every Job.active check: the registry makes it while it walks its
    table of jobs, the worst moment for another session to change that table."""
    real = jobs.Job.active
    monkeypatch.setattr(jobs.Job, "active", property(lambda job: time.sleep(0) or real.fget(job)))


def _consistency_problem(snap: dict) -> str | None:
    """What a page polling this snapshot would show that cannot be true, or None."""
    over = snap["state"] in FINAL
    if over != (snap["finished"] is not None):
        return f"state {snap['state']} with finished={snap['finished']}"
    if snap["result"] is not None and not over:
        return f"a result while the job is still {snap['state']}"
    return None


@pytest.mark.parametrize("workers", [1, 2])
def test_the_registry_stays_consistent_while_sessions_start_stop_cancel_and_poll(tmp_path, monkeypatch, workers,
                                                                                 fast_thread_switches,
                                                                                 thread_switch_in_job_active):
    """Six sessions of three owners start, stop, cancel and poll at random for three seconds while
    fast fake trainings start and end: no call raises, never more trainings run at once than there
    are workers, they start in the order they were queued, every snapshot is consistent, no job is
    lost (each one ran to its end or was cancelled while waiting), and the registry accepts the
    next training."""
    guard = threading.Lock()
    running, overlaps, began = [], [], []

    def fake_train(config, job):  # a training that takes a few milliseconds
        with guard:
            running.append(job.id)
            began.append(job)
            if len(running) > workers:
                overlaps.append(list(running))
        try:
            for step in range(3):
                job.check_stop()
                job.add_batch({"step": step})
                time.sleep(0.0005)
            return {"run_dir": job.run_dir}
        finally:
            with guard:
                running.remove(job.id)

    monkeypatch.setattr(jobs, "train", fake_train)
    registry = JobRegistry(workers=workers)
    config = TrainConfig(data=str(tmp_path), strategy="scratch", image_size=48,
                         runs_dir=str(tmp_path / "runs")).resolved()
    started, problems, refused = [], [], []
    end = time.time() + 3

    def session(seed: int) -> None:
        rng = random.Random(seed)
        owner = f"owner-{seed % 3}"
        try:
            while time.time() < end:
                action = rng.randrange(7)
                if action == 0:
                    started.append(registry.start(config, owner=owner))
                elif action == 1:
                    job = registry.latest()
                    if job is not None and rng.random() < 0.3:
                        try:
                            registry.stop(job.id, owner)
                        except NotYours:
                            refused.append(job.owner != owner)
                elif action == 2:
                    job = registry.latest()
                    found = registry.get(job.id) if job is not None else None
                    if job is not None and found is not job and registry.latest() is job:
                        problems.append("the latest job is missing from the registry")
                elif action == 3:
                    queue = registry.queue()
                    if any(registry.place(j) not in (None, i + 1) for i, j in enumerate(queue[:1])):
                        problems.append("the first queued job is not at place 1")
                    registry.wait_estimate(queue[-1]) if queue else None
                elif action == 4:
                    if not all(isinstance(d, str) for d in registry.active_run_dirs()):
                        problems.append("a run folder that is not a path")
                elif action == 5:
                    if len(registry.running()) > workers:
                        problems.append("more running jobs than workers")
                else:
                    job = registry.latest(owner)
                    problem = job and _consistency_problem(job.snapshot())
                    if problem:
                        problems.append(problem)
        except Exception as e:  # noqa: BLE001  every failure is reported below
            problems.append(f"{type(e).__name__}: {e}")

    sessions = [threading.Thread(target=session, args=(i,)) for i in range(6)]
    for t in sessions:
        t.start()
    for t in sessions:
        t.join(30)
    deadline = time.time() + 30
    while (registry.queue() or registry.running()) and time.time() < deadline:
        time.sleep(0.01)
    assert problems == [], problems[:5]
    assert overlaps == []
    assert refused and all(refused), "only another owner's stop is refused"
    assert len(started) >= 10, "too few trainings started to test anything"
    assert [j.id for j in started if j.state not in FINAL] == []  # none lost: every job ended
    cancelled = [j for j in started if j.state == "cancelled"]
    assert all(j.thread is None for j in cancelled)  # cancelled ones never ran
    ran = sorted(j.ticket for j in started if j.state != "cancelled")
    if workers == 1:  # first come, first served (with two workers, two threads start in either order)
        assert [j.ticket for j in began] == ran
    assert sorted(j.ticket for j in began) == ran
    assert registry.active() is None and registry.active_run_dirs() == []
    last = registry.start(config)
    last.thread.join(10)
    assert last.state == "finished" and registry.latest() is last


# ---------------------------------------------------------------- a disk that fills up

class FillingDisk:
    """Every write to a run folder goes through here. From the first write that `fills_at` matches
    on, each one fails with ENOSPC, as on a disk that just filled up, until free() makes room."""

    WRITES = ("write_status", "append_history", "save_model", "write_json")

    def __init__(self, monkeypatch, fills_at):
        self.fills_at, self.full = fills_at, False
        for name in self.WRITES:
            monkeypatch.setattr(runs, name, self._guarded(name, getattr(runs, name)))

    def _guarded(self, name, real):
        def write(*args, **kwargs):
            if self.fills_at is not None and self.fills_at(name, args, kwargs):
                self.full, self.fills_at = True, None  # it fills up once
            if self.full:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(*args, **kwargs)
        return write

    def free(self) -> None:
        self.full = False


def _json_file(file: str):
    return lambda name, args, kwargs: name == "write_json" and str(args[0]).endswith(file)


# Each point: the first write of that kind in a training, in the order a training writes them.
FILLS_AT = {
    "skipped": _json_file("skipped.json"),
    "model": lambda name, args, kwargs: name == "save_model",
    "best-status": lambda name, args, kwargs: name == "write_status" and "best_epoch" in kwargs,
    "history": lambda name, args, kwargs: name == "append_history",
    "metrics": _json_file("metrics.json"),
    "predictions": _json_file("predictions.json"),
    "final-status": lambda name, args, kwargs: name == "write_status" and kwargs.get("state") == "finished",
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("point", [p if p == "best-status" else pytest.param(p, marks=pytest.mark.slow)
                                   for p in FILLS_AT])
def test_a_disk_filling_up_at_any_write_fails_the_job_and_the_next_one_starts(shapes, runs_dir, monkeypatch,
                                                                              point):
    disk = FillingDisk(monkeypatch, FILLS_AT[point])
    registry = JobRegistry()
    job = registry.start(tiny_config(shapes, runs_dir))
    job.thread.join(120)
    assert not job.thread.is_alive()
    assert disk.full, "the training never reached this write"
    assert job.state == "failed" and registry.active() is None
    assert job.error.startswith("The runs folder is full: free some space, then start the training again")
    assert not job.input_error
    assert list(Path(runs_dir).rglob(".tmp-*")) == []  # nothing half-written left behind

    disk.free()
    again = registry.start(tiny_config(shapes, runs_dir, epochs=1))
    again.thread.join(120)
    assert again.state == "finished", again.error
    assert runs.read_run(again.run_dir).state == "finished"


@pytest.mark.timeout(300)
def test_the_command_line_says_a_full_disk_in_one_line(shapes, runs_dir, monkeypatch, capsys):
    from core import train

    FillingDisk(monkeypatch, FILLS_AT["best-status"])
    code = train.main(["--data", shapes, "--strategy", "scratch", "--image-size", "48", "--epochs", "1",
                       "--runs-dir", str(runs_dir)])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 1
    assert len(lines) == 1 and lines[0].startswith("error: The runs folder is full"), lines


def test_write_failures_read_as_one_sentence_about_the_runs_folder(tmp_path):
    runs_dir = str(tmp_path / "runs")
    inside = os.path.join(runs_dir, "run-1", "status.json")
    assert str(write_failure_sentence(OSError(errno.EROFS, "Read-only file system", inside), runs_dir)) \
        .startswith("The runs folder is read-only:")
    assert str(write_failure_sentence(FileNotFoundError(errno.ENOENT, "No such file or directory", inside), runs_dir)) \
        .startswith("The runs folder was deleted:")
    # The same errors from the user's images are not about the runs folder.
    assert write_failure_sentence(FileNotFoundError(errno.ENOENT, "No such file", str(tmp_path / "a.jpg")),
                                  runs_dir) is None
    assert write_failure_sentence(ValueError("not an OSError"), runs_dir) is None
