"""Training memory stays bounded: a memory budget for decoded images, streaming from the files
beyond it, and tf.data pipelines that index the arrays instead of copying them."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from core import data, images, pipeline
from core.jobs import Job, TrainConfig
from tiny_runs import tiny_config


def _no_whole_decode(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("the whole split was decoded into memory")
    monkeypatch.setattr(pipeline, "load_arrays", refuse)


def test_over_the_budget_a_training_reads_the_files_batch_by_batch(shapes, runs_dir, monkeypatch):
    _no_whole_decode(monkeypatch)
    job = Job(tiny_config(shapes, runs_dir, memory_budget_mb=0, augment=True))  # augmented in the pipeline too
    result = job.run()
    assert job.error is None, job.error
    assert any("over the memory budget" in line and "--memory-budget-mb" in line for line in map(str, job.logs))
    assert result["epochs_run"] == 2 and 0 <= result["test_accuracy"] <= 1
    predictions = json.load(open(os.path.join(result["run_dir"], "predictions.json")))
    scanned_test = data.scan(shapes).splits["test"]
    assert sorted(p["path"] for p in predictions) == sorted(p for p, _ in scanned_test)


def test_within_the_budget_the_images_are_decoded_once(shapes, runs_dir, monkeypatch):
    calls = []
    real = pipeline.load_arrays
    monkeypatch.setattr(pipeline, "load_arrays", lambda items, *a, **k: calls.append(len(items))
                        or real(items, *a, **k))
    job = Job(tiny_config(shapes, runs_dir, memory_budget_mb=100, epochs=1))
    job.run()
    assert job.error is None, job.error
    assert len(calls) == 3 and not any("memory budget" in line for line in map(str, job.logs))


@pytest.mark.parametrize("views", [1, pytest.param(2, marks=pytest.mark.slow)])  # 2: augmented views, streamed
def test_streamed_feature_extraction_learns_what_the_in_memory_one_learns(split_shapes, runs_dir, monkeypatch, views):
    cfg = dict(strategy="feature-extraction", base="mobilenet_025", image_size=32, epochs=3,
               augment=views > 1, views=views)
    in_memory = Job(tiny_config(split_shapes, runs_dir, memory_budget_mb=100, **cfg))
    first = in_memory.run()
    _no_whole_decode(monkeypatch)
    streamed = Job(tiny_config(split_shapes, runs_dir, memory_budget_mb=0, **cfg))
    second = streamed.run()
    assert in_memory.error is None and streamed.error is None, (in_memory.error, streamed.error)
    probs = [np.array([p["probs"] for p in json.load(open(os.path.join(r["run_dir"], "predictions.json")))])
             for r in (first, second)]
    np.testing.assert_allclose(probs[0], probs[1], atol=1e-3)  # same features, same seeded head training


def test_file_images_decode_like_load_arrays_and_survive_a_file_gone_bad(shapes):
    items = data.scan(shapes).splits["train"]
    whole, labels, paths = pipeline.load_arrays(items, 20)
    files, file_labels, file_paths = pipeline.file_images(items, 20)
    assert files.shape == whole.shape and len(files) == len(whole) and files.nbytes == 0
    assert (file_labels == labels).all() and file_paths == paths
    np.testing.assert_array_equal(files[2:7], whole[2:7])
    np.testing.assert_array_equal(files[np.array([5, 0, 3])], whole[[5, 0, 3]])
    np.testing.assert_array_equal(files[-1], whole[-1])

    open(items[1][0], "wb").write(b"gone bad after the scan")
    skipped = []
    files = pipeline.FileImages(paths, 20, skipped=skipped)
    assert files[0:3][1].max() == 0  # black, and the batch keeps its shape
    files[1:2]
    assert [s.path for s in skipped] == [items[1][0]] and "changed during training" in str(skipped[0].reason)


def _epochs(ds, n):
    return [np.concatenate([y.numpy() for _, y in ds]) for _ in range(n)]


def test_shuffled_batches_cover_every_sample_once_per_epoch_in_a_new_seeded_order():
    images = np.arange(20, dtype=np.uint8).reshape(20, 1, 1, 1).repeat(3, axis=3)
    labels = np.arange(20, dtype=np.int32)
    ds = pipeline.batch_dataset(images, labels, 6, shuffle=True, seed=3)
    assert int(ds.cardinality()) == 4
    one, two = _epochs(ds, 2)
    assert sorted(one) == sorted(two) == list(range(20)) and list(one) != list(two)
    again = _epochs(pipeline.batch_dataset(images, labels, 6, shuffle=True, seed=3), 1)[0]
    assert list(again) == list(one)
    for x, y in pipeline.batch_dataset(images, labels, 6, shuffle=True, seed=3):
        assert x.dtype.name == "float32" and (x.numpy()[:, 0, 0, 0] == y.numpy()).all()  # rows keep their labels
    in_order = _epochs(pipeline.batch_dataset(images, labels, 6), 1)[0]
    assert list(in_order) == list(range(20))


def test_cached_views_are_drawn_per_sample_from_that_samples_views():
    n, views = 30, 4
    features = (np.arange(n)[:, None] * 10 + np.arange(views)[None, :]).astype(np.float16)[..., None]
    seen = set()
    for x, y in pipeline.batch_dataset(features, np.arange(n, dtype=np.int32), 7, shuffle=True, views=views):
        values = x.numpy()[:, 0].astype(int)
        assert ((values // 10) == y.numpy()).all()
        seen.update(values % 10)
    assert seen == set(range(views))


def test_the_memory_budget_comes_from_the_argument_then_the_environment(monkeypatch):
    monkeypatch.setenv(pipeline.BUDGET_ENV, "100")
    assert pipeline.memory_budget() == 100 * 1024 ** 2
    assert pipeline.memory_budget(5) == 5 * 1024 ** 2
    monkeypatch.setenv(pipeline.BUDGET_ENV, "lots")
    with pytest.raises(data.DatasetError, match=pipeline.BUDGET_ENV):
        pipeline.memory_budget()
    with pytest.raises(ValueError, match="not 'lots'"):  # before any run folder is made
        TrainConfig(data=".").resolved()
    monkeypatch.delenv(pipeline.BUDGET_ENV)
    available = images.available_memory_bytes()
    assert 0 < pipeline.memory_budget() <= (available or 4 * 1024 ** 3)
    with pytest.raises(ValueError, match="memory-budget"):
        TrainConfig(data=".", memory_budget_mb=-1).resolved()


def test_the_decode_cache_holds_no_more_than_the_memory_budget(shapes, monkeypatch):
    """Issue 12.8: the cache of decoded images was a fixed 3 GB beside the budget; it is part of it."""
    items = data.scan(shapes, val_fraction=0, test_fraction=0).splits["train"]  # 36 images
    pipeline.DECODE_CACHE.clear()
    monkeypatch.setenv(pipeline.BUDGET_ENV, str(36 * 20 * 20 * 3 * 1.5 / 1024 ** 2))  # one 20-px set fits, not two
    first = pipeline.load_arrays(items, 20)
    assert pipeline.load_arrays(items, 20) is first  # kept: decoded once
    pipeline.load_arrays(items[:30], 20)  # the newest is kept, the oldest dropped to stay within the budget
    assert pipeline.DECODE_CACHE.nbytes == 30 * 20 * 20 * 3 <= pipeline.memory_budget()
    assert pipeline.load_arrays(items, 20) is not first
    monkeypatch.setenv(pipeline.BUDGET_ENV, "0")  # no memory for decoded images: nothing is kept
    pipeline.load_arrays(items, 24)
    assert pipeline.DECODE_CACHE.nbytes == 0


def test_no_batch_leaves_a_replica_empty():
    # 9 images, batches of 8 on 2 replicas: a last batch of 1 would give one replica nothing.
    images = np.arange(9, dtype=np.uint8).reshape(9, 1, 1, 1)
    labels = np.arange(9, dtype=np.int32)
    in_order = [y.numpy().tolist() for _, y in pipeline.batch_dataset(images, labels, 8, replicas=2)]
    assert in_order == [list(range(8)), [8, 8]]  # padded with a copy: predict_all keeps the first 9
    shuffled = [len(y) for _, y in pipeline.batch_dataset(images, labels, 8, shuffle=True, replicas=2)]
    assert shuffled == [8]  # in training, the odd one sits this epoch out
    assert [len(y) for _, y in pipeline.batch_dataset(images, labels, 8)] == [8, 1]  # one device: untouched


def test_a_file_that_goes_bad_during_a_streamed_training_is_reported_in_skipped_json(shapes, runs_dir, monkeypatch):
    real = pipeline.file_images
    gone_bad = []

    def then_one_file_changes(items, *a, **k):
        if not gone_bad:
            gone_bad.append(items[0][0])
            open(items[0][0], "wb").write(b"overwritten while the training ran")
        return real(items, *a, **k)

    monkeypatch.setattr(pipeline, "file_images", then_one_file_changes)
    job = Job(tiny_config(shapes, runs_dir, memory_budget_mb=0, epochs=1))
    result = job.run()
    assert job.error is None and result["test_accuracy"] is not None, job.error
    skipped = json.load(open(os.path.join(result["run_dir"], "skipped.json")))
    assert [s["path"] for s in skipped] == gone_bad and "changed during training" in skipped[0]["reason"]
    assert any("could not be read during training" in line for line in map(str, job.logs))
