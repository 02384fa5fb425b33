"""core.training and core.jobs: the three strategies, the job registry, stop, errors, runs on disk."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest

from core import features, metrics, pipeline, runs
from core.jobs import Job, JobRegistry, TrainConfig
from tiny_runs import tiny_config


def test_scratch_run_writes_a_complete_run_folder(shapes, runs_dir):
    job = Job(tiny_config(shapes, runs_dir, augment=True))
    result = job.run()
    assert job.state == "finished" and job.error is None
    assert result["epochs_run"] == 2 and result["evaluated_on"] == "test"
    assert 0 <= result["test_accuracy"] <= 1 and result["val_accuracy"] is not None
    files = set(os.listdir(result["run_dir"]))
    assert {"config.json", "history.jsonl", "status.json", "model.keras", "metrics.json",
            "predictions.json"} <= files
    run = runs.read_run(result["run_dir"])
    assert run.state == "finished" and [h["epoch"] for h in run.history] == [1, 2]
    assert run.config["augment_config"]["rotation"] == 40  # the classic settings, saved with the run
    m = run.metrics
    assert np.array(m["confusion_matrix"]).sum() == m["count"] == len(json.load(
        open(os.path.join(result["run_dir"], "predictions.json"))))
    assert set(m["per_class"]) == {"circle", "square", "triangle"}
    # per batch and per epoch metrics were published
    snap = job.snapshot()
    assert len(snap["batches"]) >= 2 * 3 and len(snap["epochs"]) == 2


def test_feature_extraction_computes_features_once_then_trains_the_head(split_shapes, runs_dir, monkeypatch):
    calls = []
    real = features.extract
    monkeypatch.setattr(features, "extract", lambda job, model, images, views, *a, **k:
                        calls.append((len(images), views)) or real(job, model, images, views, *a, **k))
    job = Job(tiny_config(split_shapes, runs_dir, strategy="feature-extraction", base="mobilenet_025", image_size=32,
                          epochs=5, augment=True, views=3))
    result = job.run()
    assert job.error is None, job.error
    assert calls == [(32, 3), (12, 1)]  # train: 3 views per image, validation once; never per epoch
    assert [e["phase"] for e in job.epochs] == ["head"] * 5
    model = runs.load_model(result["run_dir"])
    assert model.get_layer("head_pool") is not None  # the saved model is the full flat image model


@pytest.mark.slow  # MobileNetV2 in both phases; the fast tier fine-tunes in test_reliability_jobs.py (stop tests)
def test_fine_tune_runs_two_phases_and_trains_the_top_layers(split_shapes, runs_dir):
    # 54 layers: the cut has two tensors (a residual connection crosses it); 2 augmented views.
    job = Job(tiny_config(split_shapes, runs_dir, strategy="fine-tune", epochs=2, fine_tune_epochs=2,
                          unfreeze=54, base="mobilenet_v2", image_size=32, augment=True, views=2))
    result = job.run()
    assert job.error is None, job.error
    assert [e["phase"] for e in job.epochs] == ["head", "head", "fine-tune", "fine-tune"]
    assert [e["epoch"] for e in job.epochs] == [1, 2, 3, 4]
    assert result["epochs_run"] == 4
    assert any("Fine-tuning the top 54 layers" in line for line in map(str, job.logs))


def test_stop_is_honoured_within_one_batch_and_keeps_the_model(shapes, runs_dir, monkeypatch):
    job = Job(tiny_config(shapes, runs_dir, epochs=50, batch_size=2))
    real_add = job.add_batch

    def add_then_stop(record):
        real_add(record)
        if len(job.batches) == 3:
            job.request_stop()

    job.add_batch = add_then_stop
    result = job.run()
    assert len(job.batches) == 3  # not one batch more
    assert job.state == "stopped"
    assert job.epochs[-1]["partial"] is True and job.epochs[-1]["val_accuracy"] is None
    assert os.path.exists(os.path.join(result["run_dir"], "model.keras"))
    assert runs.read_run(result["run_dir"]).state == "stopped"


def test_registry_runs_one_job_at_a_time_in_the_background(shapes, runs_dir):
    registry = JobRegistry(workers=1)
    job = registry.start(tiny_config(shapes, runs_dir, epochs=30, batch_size=2))
    waiting = registry.start(tiny_config(shapes, runs_dir))  # queued behind it, not refused
    assert waiting.state == "queued" and registry.place(waiting) == 1
    registry.stop(waiting.id, None)
    deadline = time.time() + 60
    while not job.batches and time.time() < deadline:
        time.sleep(0.05)
    assert job.snapshot()["state"] in ("running", "stopping")
    job.request_stop()
    job.request_stop()  # twice is harmless
    job.thread.join(60)
    assert not job.thread.is_alive() and job.state == "stopped"
    assert registry.active() is None and waiting.state == "cancelled" and waiting.thread is None
    again = registry.start(tiny_config(shapes, runs_dir, epochs=1))
    again.thread.join(60)
    assert again.state == "finished"


def test_an_error_in_the_thread_becomes_a_readable_failed_job(shapes, runs_dir, monkeypatch):
    def boom(*a, **k):
        raise MemoryError()

    monkeypatch.setattr(pipeline, "load_arrays", boom)
    registry = JobRegistry()
    job = registry.start(tiny_config(shapes, runs_dir))
    job.thread.join(60)
    assert job.state == "failed" and "Out of memory" in job.error and "batch size" in job.error
    assert runs.read_run(job.run_dir).state == "failed"


def test_bad_settings_are_refused_before_a_thread_starts(shapes, runs_dir):
    with pytest.raises(ValueError, match="Unknown strategy"):
        JobRegistry().start(tiny_config(shapes, runs_dir, strategy="magic"))
    with pytest.raises(ValueError, match="Unknown base"):
        TrainConfig(data=shapes, strategy="fine-tune", base="alexnet").resolved()


def test_metrics_from_probabilities():
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = metrics.metrics_from_probs(probs, np.array([0, 1, 1, 1]), ["a", "b"])
    assert m["accuracy"] == 0.75 and m["confusion_matrix"] == [[1, 0], [1, 2]]
    assert m["per_class"]["a"]["precision"] == 0.5 and m["per_class"]["b"]["recall"] == pytest.approx(2 / 3)
