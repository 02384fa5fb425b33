"""core.feature_cache and the whole run's progress: base features kept on disk across runs, keyed by
the images' content, never trusted when damaged, bounded, emptied on demand; and the progress a
job publishes while it computes them."""
from __future__ import annotations

import errno
import os

import numpy as np
import pytest

from core import feature_cache, features, files
from core.jobs import Job
from core.progress import RunProgress, Step
from tiny_runs import tiny_config


@pytest.fixture
def counted_forward(monkeypatch):
    """How many batches went through the frozen part of the model (features computed)."""
    batches = []
    real = features.compiled_forward

    def counting(model):
        forward = real(model)
        return lambda x: batches.append(len(x)) or forward(x)

    monkeypatch.setattr(features, "compiled_forward", counting)
    return batches


def extraction(data, runs_dir, **overrides) -> Job:
    return Job(tiny_config(data, runs_dir, strategy="feature-extraction", base="mobilenet_025", image_size=32,
                           epochs=1, **overrides))


def run(job: Job) -> dict:
    result = job.run()
    assert job.state == "finished", job.error
    return result


def log_text(job: Job) -> str:
    return "\n".join(map(str, job.logs))


def entries(runs_dir) -> list[str]:
    folder = feature_cache.cache_dir(runs_dir)
    return sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(feature_cache.ENTRY_SUFFIX))


@pytest.mark.slow  # two or three trainings (~15 s each on a quiet 2-core machine)
def test_a_second_identical_run_reads_the_features_and_decodes_nothing(split_shapes, runs_dir, counted_forward):
    first = run(extraction(split_shapes, runs_dir))
    assert sum(counted_forward) == 16 * 2 + 6 * 2  # train and validation computed once
    assert len(entries(runs_dir)) == 2
    counted_forward.clear()
    job = extraction(split_shapes, runs_dir)
    phases = []
    real = job.set_phase
    job.set_phase = lambda name: phases.append(name) or real(name)
    second = run(job)
    assert counted_forward == []  # nothing computed: both splits came from the cache
    assert log_text(job).count("read from the feature cache") == 2
    assert phases[:4] == ["scan", "features (train)", "features (validation)", "head"]  # no decoding before the head
    assert second["test_accuracy"] == first["test_accuracy"]


@pytest.mark.slow  # two or three trainings (~15 s each on a quiet 2-core machine)
def test_an_image_changed_in_place_is_computed_again(split_shapes, runs_dir, counted_forward):
    run(extraction(split_shapes, runs_dir))
    folder = os.path.join(split_shapes, "train", "circle")
    changed = os.path.join(folder, sorted(os.listdir(folder))[0])
    other = os.path.join(split_shapes, "train", "square", sorted(os.listdir(os.path.join(split_shapes, "train",
                                                                                          "square")))[0])
    with open(other, "rb") as f:
        content = f.read()
    with open(changed, "wb") as f:  # same path, another picture
        f.write(content)
    st = os.stat(changed)
    os.utime(changed, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    counted_forward.clear()
    job = extraction(split_shapes, runs_dir)
    run(job)
    assert sum(counted_forward) == 16 * 2  # train computed again; validation unchanged, read from the cache
    assert log_text(job).count("read from the feature cache") == 1


@pytest.mark.slow  # two or three trainings (~15 s each on a quiet 2-core machine)
def test_a_damaged_entry_is_recomputed_and_replaced(split_shapes, runs_dir, counted_forward):
    first = run(extraction(split_shapes, runs_dir))
    for path in entries(runs_dir):
        with open(path, "r+b") as f:
            f.truncate(os.path.getsize(path) // 2)
    counted_forward.clear()
    job = extraction(split_shapes, runs_dir)
    second = run(job)
    assert sum(counted_forward) == 16 * 2 + 6 * 2
    assert log_text(job).count("A feature cache entry was damaged") == 2
    assert second["test_accuracy"] == first["test_accuracy"]
    counted_forward.clear()
    run(extraction(split_shapes, runs_dir))
    assert counted_forward == []  # the recomputed entries are whole again


def test_a_cache_that_cannot_be_written_does_not_fail_the_training(split_shapes, runs_dir, monkeypatch):
    real = files.atomic_file

    def full_for_the_cache(path, *args, **kwargs):
        if feature_cache.SUBFOLDER in path:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(files, "atomic_file", full_for_the_cache)
    job = extraction(split_shapes, runs_dir)
    result = run(job)
    assert result["test_accuracy"] is not None
    assert "The feature cache could not be written (the disk is full)" in log_text(job)
    assert not os.path.exists(feature_cache.cache_dir(runs_dir)) or entries(runs_dir) == []


def test_wrong_content_under_a_key_is_never_trusted(tmp_path):
    cache = feature_cache.FeatureCache(str(tmp_path))
    cache.save("a", [np.ones((3, 4), np.float32)])
    os.replace(cache._path("a"), cache._path("b"))  # an entry under another entry's name
    assert cache.load("b", 3) is None and not os.path.exists(cache._path("b"))
    cache.save("c", [np.ones((3, 4), np.float32)])
    assert cache.load("c", 5) is None  # wrong number of rows: not these images


def test_the_size_limit_evicts_the_least_recently_used(tmp_path):
    cache = feature_cache.FeatureCache(str(tmp_path))
    rows = np.zeros((100, 2), np.float32)
    cache.save("probe", [rows])
    cache.limit = int(feature_cache.usage(str(tmp_path)).bytes * 2.5)  # room for two entries
    feature_cache.clear(str(tmp_path))
    for i, key in enumerate(("old", "used", "new")):
        cache.save(key, [rows + i])
        os.utime(cache._path(key), ns=(i * 10 ** 9, i * 10 ** 9))
    assert feature_cache.usage(str(tmp_path)).entries == 2
    assert cache.load("old", 100) is None and cache.load("used", 100) is not None  # "used" is now the newest
    cache.save("newest", [rows])
    assert cache.load("new", 100) is None and cache.load("used", 100) is not None


def test_clear_empties_the_cache_from_the_command_line(tmp_path, capsys):
    from core.train import main

    cache = feature_cache.FeatureCache(str(tmp_path))
    cache.save("a", [np.zeros((10, 10), np.float32)])
    assert feature_cache.usage(str(tmp_path)).entries == 1
    assert main(["--clear-feature-cache", "--runs-dir", str(tmp_path)]) == 0
    assert feature_cache.usage(str(tmp_path)) == feature_cache.Usage(0, 0)
    assert "Feature cache emptied: 1 entries" in capsys.readouterr().out


def test_the_snapshot_shows_progress_images_and_the_rest_of_the_run_during_feature_extraction(split_shapes,
                                                                                            runs_dir):
    job = extraction(split_shapes, runs_dir)
    seen = []
    real = job.set_progress

    def progress(done, total, items=None):
        real(done, total, items)
        if job.phase == "features (train)":
            seen.append(job.snapshot())
    job.set_progress = progress
    run(job)
    snap = seen[-1]["progress"]
    assert snap["phase"] == "features (train)" and snap["unit"] == "images"
    assert (snap["done"], snap["total"]) == (16 * 2, 16 * 2)
    assert snap["images"] and all(p.startswith(os.path.join(split_shapes, "train")) for p in snap["images"])
    assert snap["next"] == ["features (validation)", "head", "decode", "evaluate"]
    assert snap["per_second"] is None or snap["per_second"] > 0


def test_the_eta_covers_every_phase_left_from_measured_rates():
    now = [0.0]
    progress = RunProgress(clock=lambda: now[0])
    progress.plan([Step("features (train)", 100, "forward"), Step("head", 50, "head"), Step("evaluate", 40, "evaluate")])
    progress.begin("features (train)")
    assert progress.remaining() is None  # nothing measured: no guess about this machine
    now[0] = 0.1
    progress.update(1, 100)
    assert progress.remaining() is None  # measured over too short a time to extrapolate
    now[0] = 10.0
    progress.update(50, 100)  # 0.2 s per image
    low, high = progress.snapshot()["eta_range"]
    # 50 images left + the evaluation's 40 (same work) + the head (guessed from the images' rate): a wide range
    estimate = 50 * 0.2 + 40 * 0.2 + 50 * 0.2 * 0.05
    assert low < estimate < high and high / low > 2
    now[0] = 20.0
    progress.update(100, 100)
    progress.begin("head")
    now[0] = 21.0
    progress.update(25, 50)  # 0.04 s per batch, measured
    low, high = progress.remaining()
    assert low < 25 * 0.04 + 40 * 0.2 < high and high / low < 1.6  # nothing left is a guess: narrower
