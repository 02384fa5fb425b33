"""The training queue: several people start trainings, they wait their turn, each can cancel or
stop only their own, a teacher's admin token any; a server restart leaves a record of the waiting
ones. Fake trainings (injected into core.jobs) that wait for the test to let them finish."""
from __future__ import annotations

import threading
import time

import pytest

from core import devices, jobs, runs
from core.jobs import JobRegistry, NotYours, TrainConfig, estimate_wait
from tiny_runs import tiny_config


class Gate:
    """Fake trainings that run until the test opens their gate (by job ticket)."""

    def __init__(self, monkeypatch):
        self.open, self.began = {}, []
        monkeypatch.setattr(jobs, "train", self.train)

    def train(self, config, job):
        self.began.append(job.ticket)
        gate = self.open.setdefault(job.ticket, threading.Event())
        while not gate.wait(0.01):
            job.check_stop()
        job.add_epoch({"epoch": 1, "phase": "train", "loss": 1.0})
        return {"run_dir": job.run_dir}

    def finish(self, job) -> None:
        self.open.setdefault(job.ticket, threading.Event()).set()
        job.thread.join(10)


def wait_until(condition, timeout=10):
    end = time.time() + timeout
    while not condition():
        assert time.time() < end, "timed out"
        time.sleep(0.01)


@pytest.fixture
def config(tmp_path):
    return TrainConfig(data=str(tmp_path), strategy="scratch", image_size=48, epochs=1,
                       runs_dir=str(tmp_path / "runs"))


def test_a_second_and_third_training_from_others_are_queued_and_run_in_order(config, monkeypatch):
    gate = Gate(monkeypatch)
    registry = JobRegistry(workers=1)
    first, second, third = (registry.start(config, owner=who) for who in ("ann", "bob", "cy"))
    wait_until(lambda: first.state == "running")
    assert (second.state, third.state) == ("queued", "queued")
    assert (registry.place(first), registry.place(second), registry.place(third)) == (None, 1, 2)
    # Waiting jobs are on disk from the start, owner and all.
    assert runs.read_run(third.run_dir, registry.active_run_dirs()).state == "queued"
    assert runs.read_status(third.run_dir)["owner"] == "cy"
    gate.finish(first)
    wait_until(lambda: second.state == "running")
    assert registry.place(third) == 1
    gate.finish(second)
    gate.finish(third)
    assert gate.began == [1, 2, 3] and [j.state for j in (first, second, third)] == ["finished"] * 3


def test_two_workers_run_two_at_once(config, monkeypatch):
    gate = Gate(monkeypatch)
    registry = JobRegistry(workers=2)
    a, b, c = (registry.start(config, owner="ann") for _ in range(3))
    wait_until(lambda: a.state == b.state == "running")
    assert c.state == "queued" and {a.worker, b.worker} == {0, 1}
    gate.finish(b)
    wait_until(lambda: c.state == "running")
    assert c.worker == b.worker
    gate.finish(a)
    gate.finish(c)


def test_a_queued_training_can_be_cancelled_by_its_owner_and_leaves_nothing(config, monkeypatch):
    gate = Gate(monkeypatch)
    registry = JobRegistry(workers=1)
    first = registry.start(config, owner="ann")
    second, third = registry.start(config, owner="bob"), registry.start(config, owner="cy")
    with pytest.raises(NotYours, match="started by someone else"):
        registry.stop(second.id, "cy")
    registry.stop(second.id, "bob")
    assert second.state == "cancelled" and second.finished and registry.place(third) == 1
    assert runs.list_runs(config.runs_dir, registry.active_run_dirs())[-1].id != second.run_dir
    assert second.run_dir not in [r.run_dir for r in runs.list_runs(config.runs_dir)]
    gate.finish(first)
    gate.finish(third)
    assert gate.began == [1, 3] and second.thread is None


def test_only_the_owner_or_the_admin_token_stops_a_running_training(config, monkeypatch):
    gate = Gate(monkeypatch)
    monkeypatch.setenv(jobs.ADMIN_TOKEN_ENV, "teacher-secret")
    registry = JobRegistry(workers=2)
    ann, bob = registry.start(config, owner="ann"), registry.start(config, owner="bob")
    wait_until(lambda: ann.state == bob.state == "running")
    with pytest.raises(NotYours):
        registry.stop(ann.id, "bob")
    with pytest.raises(NotYours):
        registry.stop(ann.id, None)  # no token is nobody's
    assert ann.state == "running"
    registry.stop(ann.id, "ann")
    registry.stop(bob.id, "teacher-secret")
    ann.thread.join(10)
    bob.thread.join(10)
    assert (ann.state, bob.state) == ("stopped", "stopped")
    assert not ann.may_be_stopped_by("teacher") and not ann.may_be_stopped_by("")


def test_a_server_restart_marks_queued_trainings_not_started_and_running_ones_interrupted(config, monkeypatch):
    gate = Gate(monkeypatch)
    before = JobRegistry(workers=1)
    running, waiting = before.start(config, owner="ann"), before.start(config, owner="bob")
    wait_until(lambda: running.state == "running")
    runs.write_status(running.run_dir, state=runs.RUNNING)  # as the real training writes when it starts
    # A new server on the same runs folder (here: a new registry in this process, the old one's jobs unknown to it).
    after = JobRegistry(workers=1)
    states = {r.run_dir: r.state for r in runs.list_runs(config.runs_dir, after.active_run_dirs())}
    assert states == {running.run_dir: "interrupted", waiting.run_dir: "not started"}
    before.stop(waiting.id, "bob")
    gate.finish(running)


def test_the_wait_is_estimated_from_measured_trainings_or_said_unknown(config, monkeypatch):
    gate = Gate(monkeypatch)
    registry = JobRegistry(workers=1)
    first, second = registry.start(config, owner="ann"), registry.start(config, owner="bob")
    assert registry.wait_estimate(second) is None  # nothing finished, no epoch yet: unknown
    gate.finish(first)
    third = registry.start(config, owner="cy")
    wait_until(lambda: second.state == "running")
    assert registry.wait_estimate(third) is not None  # from the first training's measured duration
    gate.finish(second)
    gate.finish(third)


def test_estimate_wait_frees_the_workers_in_turn():
    assert estimate_wait([10.0, 20.0], ahead=0, typical=None, workers=2) == 10
    assert estimate_wait([10.0, 20.0], ahead=2, typical=30.0, workers=2) == 40
    assert estimate_wait([None], ahead=0, typical=None, workers=1) is None
    assert estimate_wait([5.0], ahead=1, typical=None, workers=1) is None


def test_max_trainings_defaults_to_one_on_a_cpu_and_two_per_gpu(monkeypatch, capsys):
    monkeypatch.delenv(devices.MAX_TRAININGS_ENV, raising=False)
    assert devices.max_trainings(gpus=0) == 1 and devices.max_trainings(gpus=3) == 6
    monkeypatch.setenv(devices.MAX_TRAININGS_ENV, "4")
    assert devices.max_trainings(gpus=0) == 4
    monkeypatch.setenv(devices.MAX_TRAININGS_ENV, "many")
    assert devices.max_trainings(gpus=1) == 2 and "TRANSFERLAB_MAX_TRAININGS" in capsys.readouterr().err


def test_gpu_sharing_splits_each_gpu_between_its_workers():
    plan = devices.plan_gpu_sharing([80_000], workers=2)
    assert plan["split"] == [2] and plan["memory_limit_mb"] == [36_000] and plan["devices"] == ["/gpu:0", "/gpu:1"]
    plan = devices.plan_gpu_sharing([16_000, 24_000], workers=3)  # round-robin: GPU 0 gets two, GPU 1 one
    assert plan["split"] == [2, 1] and plan["memory_limit_mb"] == [7_200, None]
    assert plan["devices"] == ["/gpu:0", "/gpu:2", "/gpu:1"]
    assert devices.plan_gpu_sharing([80_000], workers=1)["devices"] == []  # alone: all of it, growth on
    assert devices.plan_gpu_sharing([], workers=2)["devices"] == []  # a CPU


@pytest.mark.slow
def test_two_real_tiny_trainings_from_two_owners_queue_and_finish(shapes, runs_dir):
    registry = JobRegistry(workers=1)
    first = registry.start(tiny_config(shapes, runs_dir, epochs=1), owner="ann")
    second = registry.start(tiny_config(shapes, runs_dir, epochs=1), owner="bob")
    assert second.state == "queued"
    first.thread.join(120)
    wait_until(lambda: second.thread is not None, 30)
    second.thread.join(120)
    assert (first.state, second.state) == ("finished", "finished"), (first.error, second.error)
    assert {runs.read_run(j.run_dir).state for j in (first, second)} == {"finished"}
    assert runs.read_status(second.run_dir)["owner"] == "bob"
