"""The feature cache: what the frozen part of a model outputs, computed once per image.

Feature extraction and fine-tuning never run the frozen layers twice on the same input: the
outputs of the frozen part (the pooled features, or for fine-tuning the tensors entering the
unfrozen top) are computed once for each image and each augmented view, kept in memory, and the
trainable part trains on them for every epoch. Across runs, the un-augmented view is kept on disk
by core.feature_cache.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import tensorflow as tf

from core import pipeline
from core.augment import AugmentConfig, build_augmentation

THUMBNAILS = 4  # images of the current batch shown going through


def batched(n: int, batch: int):
    """Slices of `batch` rows covering range(n)."""
    for start in range(0, n, batch):
        yield slice(start, min(n, start + batch))


def read_ahead(images, slices):
    """(slice, images[slice]) for each slice. Images read from files (FileImages) are decoded one
    batch ahead on a helper thread, so decoding overlaps the forward pass."""
    if isinstance(images, np.ndarray):
        yield from ((sl, images[sl]) for sl in slices)
        return
    with ThreadPoolExecutor(1, thread_name_prefix="transferlab-ahead") as pool:
        pending = None
        for sl in slices:
            future = pool.submit(images.__getitem__, sl)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (sl, future)
        if pending is not None:
            yield pending[0], pending[1].result()


def compiled_forward(model):
    """model(x, training=False) as one tf.function. Tracing it costs about one batch of 64 through
    MobileNetV2 on a CPU, so the train and validation splits share one (bench/throughput.py)."""
    @tf.function(reduce_retracing=True)
    def forward(x):
        return model(x, training=False)

    return forward


def extract(job, model, images, views: int, augment: AugmentConfig | None,
            seed: int, label: str, batch: int = 64, forward=None, paths: list[str] | None = None,
            plain: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """model(images) once per view, in batches; view 0 is the image itself, others augmented.

    `job` gets the phase (`label`) and the progress (with the paths of the images going through,
    from `paths`), and may stop it between batches.
    `forward`: compiled_forward(model), to reuse one already traced.
    `plain`: view 0's outputs read from the feature cache (core.feature_cache); only the augmented
    views are computed then, and `images` may be None when there are none.
    Returns one array per model output, shaped [N, views, ...] (or [N, ...] when views == 1);
    image-shaped outputs are kept in float16 (half the memory).
    """
    n = len(plain[0]) if plain is not None else len(images)
    total = n * views
    job.set_phase(label)
    if plain is not None and views == 1:
        job.set_progress(n, n, (paths or [])[:THUMBNAILS])
        return plain
    aug = build_augmentation(augment, seed=seed) if views > 1 and augment else None
    outs = None if plain is None else [np.zeros((n, views) + p.shape[1:], p.dtype) for p in plain]
    for o, p in zip(outs or [], plain or []):
        o[:, 0] = p
    first = 0 if plain is None else 1
    done, total = 0, n * (views - first)  # what is computed now
    forward = forward or compiled_forward(model)

    @tf.function(reduce_retracing=True)
    def forward_augmented(x):
        return model(aug(x, training=True), training=False)

    for view in range(first, views):
        for sl, rows in read_ahead(images, batched(n, batch)):
            job.check_stop()
            x = tf.convert_to_tensor(rows, tf.float32)
            y = forward(x) if view == 0 or aug is None else forward_augmented(x)
            y = [np.asarray(t) for t in (y if isinstance(y, (list, tuple)) else [y])]
            if outs is None:
                outs = [np.zeros((n, views) + t.shape[1:], np.float16 if t.ndim > 2 else np.float32)
                        for t in y]
            for o, t in zip(outs, y):
                o[sl, view] = t
            done += sl.stop - sl.start
            job.set_progress(done, total, paths[sl][:THUMBNAILS] if paths else None)
    return [o[:, 0] if views == 1 else o for o in outs]


def view_dataset(arrays: list[np.ndarray], labels: np.ndarray, batch_size: int, seed: int,
                 views: int, shuffle: bool):
    """tf.data over cached arrays (not copied); with several views, each epoch picks one view per sample."""
    inputs = tuple(arrays) if len(arrays) > 1 else arrays[0]
    return pipeline.batch_dataset(inputs, labels, batch_size, shuffle, seed, views).prefetch(tf.data.AUTOTUNE)


def pool_cached(pooled_model, arrays: list[np.ndarray], views: int) -> np.ndarray:
    """Pooled features from cached cut tensors (cheap: only the top layers run), batch by batch."""
    if views == 1:
        inputs = tuple(arrays) if len(arrays) > 1 else arrays[0]
        return pooled_model.predict(pipeline.batch_dataset(inputs, np.zeros(len(arrays[0]), np.int32), 256),
                                    verbose=0)
    return np.stack([pool_cached(pooled_model, [a[:, v] for a in arrays], 1) for v in range(views)], axis=1)
