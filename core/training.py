"""Training: one run of a strategy, read top to bottom as a Keras example would.

    scratch             the small convnet (or a dense network), trained on the images (augmentation
                        in the input pipeline)
    feature-extraction  build the transfer model -> extract the frozen base's features once per
                        image (and per augmented view) -> train the head on them, so an epoch costs
                        milliseconds
    fine-tune           the same, then unfreeze the top N layers of the base -> fine-tune them with
                        the head at a low learning rate (its own optimizer), on the cached tensors
                        entering those layers (the frozen part below them is computed once too)

With `end_to_end` the transfer strategies run as the book and the TensorFlow tutorial do instead:
the frozen base inside the model on every batch, augmentation every batch, trained end to end
(slow: nothing is cached).

`train(config, job)` is called by `Job.run` (core.jobs) in the job's thread; it reports to the job
and writes the run folder (core.runs). Devices are chosen in core.devices, the features are core.features
(kept across runs by core.feature_cache), what runs inside model.fit is core.callbacks, the scores are
core.metrics, the whole run's ETA is core.progress (from the plan each strategy announces).
"""
from __future__ import annotations

import contextlib
import random
import threading
import time
from dataclasses import asdict, replace

import keras
import numpy as np
import tensorflow as tf

from core import data as data_mod
from core import feature_cache, features, models, pipeline, runs
from core.augment import AugmentConfig, build_augmentation
from core.callbacks import Checkpointer, JobCallback
from core.devices import global_batch, max_trainings, mixed_precision_helps, pick_strategy, precision_policy, \
    start_tensorflow, worker_devices
from core.jobs import Job, Stopped, TrainConfig
from core.messages import ConfigError, Message, N_
from core.metrics import evaluate
from core.progress import Step

CUT_CACHE_BYTES = 4 * 1024 ** 3  # above this, fine-tuning refuses: the cached cut tensors would not fit
OPTIMIZER_CLASSES = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop,  # core.jobs.OPTIMIZERS
                     "sgd": keras.optimizers.SGD, "adagrad": keras.optimizers.Adagrad,
                     "adadelta": keras.optimizers.Adadelta}


def make_optimizer(name: str, learning_rate: float, momentum: float = 0.9, nesterov: bool = False):
    """The Keras optimizer of a core.jobs.OPTIMIZERS name (momentum and Nesterov: SGD's)."""
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate, momentum=momentum, nesterov=nesterov)
    return OPTIMIZER_CLASSES[name](learning_rate)


def train(config: TrainConfig, job: Job) -> dict:
    """Run one training to the end (or to a stop) and return the result the CLI prints.
    `config` is resolved (Job.run resolves it)."""
    t0 = time.time()
    c = config
    device = start_tensorflow(max_trainings())
    # an unknown device fails here; with trainings sharing a GPU, each worker has its own part of it
    strategy = pick_strategy(c.devices if c.devices is not None else worker_devices(job.worker))
    replicas = int(strategy.num_replicas_in_sync)
    mixed = mixed_precision_helps() if c.mixed_precision is None else bool(c.mixed_precision)
    seeds = LayerSeeds(c.seed)
    # Process-wide, unlike the layer seeds: core.data picks each sample's cached view per epoch with
    # an unseeded op, which takes its seed from TensorFlow's global one when the pipeline is built.
    tf.random.set_seed(c.seed)
    job.set_phase(N_("scan"))
    ds = data_mod.scan(c.data, c.val_fraction, c.test_fraction, c.seed, progress=job.set_progress)
    job.log(N_("Dataset {root}: {summary}"), root=ds.root, summary=ds.summary())
    if c.per_class:
        total = len(ds.splits["train"])
        ds.splits["train"] = data_mod.per_class_subset(ds.splits["train"], c.per_class, c.seed)
        job.log(N_("Training on at most {n} images per class: {kept} of the {total} training images (seed {seed})."),
                n=c.per_class, kept=len(ds.splits["train"]), total=total, seed=c.seed)
    for w in ds.warnings:
        job.log(N_("Note: {warning}"), warning=w)
    if not ds.splits["validation"]:
        raise data_mod.DatasetError(N_("No validation images: add a validation folder or more images per class."))
    smallest = min(len(ds.splits["train"]), len(ds.splits["validation"]))
    acceleration = {"replicas": replicas, "strategy": type(strategy).__name__,
                    "global_batch_size": global_batch(c.batch_size, replicas, smallest),
                    "mixed_precision": mixed, "xla": "auto" if c.xla is None else bool(c.xla)}

    run_config = {**asdict(c), "classes": ds.classes, "device": device, "acceleration": acceleration,
                  "dataset": {"root": ds.root, "layout": ds.layout, "counts": ds.counts()}}
    # A job from the queue has its run folder since it was queued; the command line's has none yet.
    run_dir = runs.start_queued_run(job.run_dir, run_config) if job.run_dir else \
        runs.create_run(c.runs_dir, run_config)
    job.run_dir = run_dir
    job.log(N_("Run folder: {path} (training on {device})"), path=run_dir, device=device)
    if replicas > 1:
        job.log(N_("{replicas} replicas ({strategy}): batch {batch} per replica, {total} in all."),
                replicas=replicas, strategy=acceleration["strategy"], batch=c.batch_size,
                total=acceleration["global_batch_size"])
    job.log(N_("Speed-ups: mixed precision (16-bit maths on a GPU) on; XLA (compiling the model) {xla}.") if mixed
            else N_("Speed-ups: mixed precision (16-bit maths on a GPU) off; XLA (compiling the model) {xla}."),
            xla=acceleration["xla"])

    runs.write_skipped(run_dir, [s.record() for s in ds.skipped])
    skipped_before = len(ds.skipped)
    if ds.skipped:
        job.log(N_("{n} files skipped (see skipped.json)."), n=len(ds.skipped))
    sets = Splits(job, c, ds)

    augment = AugmentConfig.from_dict(c.augment_config) if c.augment else None
    n_classes = len(ds.classes)
    scaled = replace(c, batch_size=acceleration["global_batch_size"])  # split across replicas
    try:
        with strategy.scope(), precision_policy(mixed):  # models are built and compiled inside
            if c.strategy == "scratch":
                model, epochs_run = _train_scratch(job, scaled, sets, augment, n_classes, seeds)
            elif c.end_to_end:
                model, epochs_run = _train_end_to_end(job, scaled, sets, augment, n_classes, seeds)
            else:
                model, epochs_run = _train_transfer(job, scaled, sets, augment, n_classes, seeds)
    except Stopped:
        model, epochs_run = None, 0
        job.log(N_("Stopped before training began: nothing to keep."))

    result = {"run_dir": run_dir, "strategy": c.strategy, "base": c.base, "image_size": c.image_size,
              "epochs_run": epochs_run, "seconds": None, "val_accuracy": None, "test_accuracy": None,
              "test_loss": None, "evaluated_on": N_("test") if "test" in sets else N_("validation"),
              "skipped": len(ds.skipped), "device": device, "replicas": replicas, "mixed_precision": mixed}
    result["val_accuracy"] = read_best(run_dir).get("best_val_accuracy")
    if model is not None and runs.has_model(run_dir):
        images, labels, paths = sets[result["evaluated_on"]]
        job.set_phase(N_("evaluate"))
        best = runs.load_model(run_dir)
        metrics, predictions = evaluate(best, images, labels, paths, ds.classes, c.batch_size, job.set_progress)
        metrics["evaluated_on"] = result["evaluated_on"]
        runs.write_metrics(run_dir, metrics)
        runs.write_predictions(run_dir, predictions)
        result["test_accuracy"], result["test_loss"] = metrics["accuracy"], metrics["loss"]
    if len(ds.skipped) > skipped_before:  # files that went bad while they were streamed
        runs.write_skipped(run_dir, [s.record() for s in ds.skipped])
        job.log(N_("{n} more files could not be read during training (see skipped.json)."),
                n=len(ds.skipped) - skipped_before)
    result["seconds"] = round(time.time() - t0, 2)
    runs.write_status(run_dir, state=runs.STOPPED if job.stop_requested else runs.FINISHED,
                      result=result, finished=time.time())
    job.log(N_("Done in {seconds} s: validation {val_accuracy}, {evaluated_on} {test_accuracy}"),
            seconds=f"{result['seconds']:.1f}", val_accuracy=result["val_accuracy"],
            evaluated_on=Message(result["evaluated_on"]), test_accuracy=result["test_accuracy"])
    return result


_PYTHON_RANDOM = threading.Lock()


class LayerSeeds:
    """The seeds of the layers one training builds, without reseeding anyone else's generators.

    Keras seeds every layer built without an explicit seed (weight initializers, dropout) from
    Python's global `random`, when the layer is constructed. keras.utils.set_random_seed would
    reseed that generator (and NumPy's and TensorFlow's) for the whole process, under every other
    browser session. Instead, each build runs with this training's own generator state swapped in
    and the process' state swapped back after it: the layers draw what they would after
    random.seed(seed), in the same order, so a seed gives the same model."""

    def __init__(self, seed: int):
        self._state = random.Random(seed).getstate()

    @contextlib.contextmanager
    def building(self):
        with _PYTHON_RANDOM:
            outside = random.getstate()
            random.setstate(self._state)
            try:
                yield
            finally:
                self._state = random.getstate()
                random.setstate(outside)


class Splits:
    """{split: (images, labels, paths)}, each split decoded when a phase first needs it: into memory
    when every split fits the memory budget (the fast path), else as FileImages that decode from the
    files batch by batch. Features read from the feature cache need no decoded images at all."""

    def __init__(self, job: Job, c: TrainConfig, ds):
        self.job, self.c, self.ds = job, c, ds
        self.names = [s for s in ("train", "validation", "test") if ds.splits.get(s)]
        need = pipeline.decoded_bytes(sum(len(ds.splits[s]) for s in self.names), c.image_size)
        budget = pipeline.memory_budget(c.memory_budget_mb)
        self.stream = need > budget
        if self.stream:
            job.log(N_("The decoded images would take {need} MB, over the memory budget of {budget} MB: reading "
                       "them from the files batch by batch instead (slower epochs for scratch training; set "
                       "--memory-budget-mb or {setting} to change the budget)."),
                    need=f"{need / 1e6:,.0f}", budget=f"{budget / 1e6:,.0f}", setting=pipeline.BUDGET_ENV)
        self._sets: dict[str, tuple] = {}

    def __contains__(self, split: str) -> bool:
        return split in self.names

    def __getitem__(self, split: str) -> tuple:
        if split not in self._sets:
            self.decode([split], stoppable=split != "test")  # the test split is for the evaluation, which a stop does not skip
        return self._sets[split]

    def decoded(self, split: str) -> bool:
        return split in self._sets or self.stream

    def paths(self, split: str) -> list[str]:
        return [p for p, _ in self.ds.splits[split]]

    def labels(self, split: str) -> np.ndarray:
        """The split's labels: of the decoded images once decoded, else of every scanned file."""
        if split in self._sets:
            return self._sets[split][1]
        return np.array([label for _, label in self.ds.splits[split]], np.int32)

    def _coloured(self, decoded: tuple) -> tuple:
        """(images, labels, paths) in the config's colour mode: one channel for grayscale."""
        x, y, paths = decoded
        return (pipeline.grayscale(x), y, paths) if self.c.color_mode == "grayscale" else decoded

    def decode(self, splits: list[str], stoppable: bool = True) -> None:
        """Decode these splits (those not decoded yet) in one phase; a stop is honoured after each."""
        c, todo = self.c, [s for s in splits if s in self.names and s not in self._sets]
        if self.stream:
            for split in todo:
                self._sets[split] = self._coloured(
                    pipeline.file_images(self.ds.splits[split], c.image_size, self.ds.skipped, c.resize))
            return
        if not todo:
            return
        self.job.set_phase(N_("decode"))
        total, offset = sum(len(self.ds.splits[s]) for s in todo), 0
        for split in todo:
            items = self.ds.splits[split]
            self._sets[split] = self._coloured(pipeline.load_arrays(
                items, c.image_size, self.ds.skipped, resize=c.resize,
                progress=lambda done, _, offset=offset: self.job.set_progress(offset + done, total)))
            offset += len(items)
            if stoppable:
                self.job.check_stop()
            if split != "test" and len(self._sets[split][1]) == 0:
                raise data_mod.DatasetError(N_("No images could be decoded for training or validation."))


def read_best(run_dir: str) -> dict:
    """The run's status as the checkpoints left it (its best epoch); {} if it cannot be read."""
    try:
        return runs.read_status(run_dir)
    except runs.RunDamaged:
        return {}


def build_model(c: TrainConfig, n_classes: int):
    """The model a resolved config trains, before training: the scratch network, or the transfer
    model with its base frozen (for fine-tune, the top `unfreeze` layers are unfrozen later)."""
    channels = 1 if c.color_mode == "grayscale" else 3
    if c.strategy != "scratch":
        return models.build_transfer(c.base, c.image_size, n_classes, c.dropout, c.weights, head=c.head,
                                     head_units=c.head_units, l2=c.l2)
    if c.network == "dense":
        return models.build_dense(c.image_size, n_classes, c.dropout, channels=channels, l2=c.l2)
    return models.build_scratch(c.image_size, n_classes, c.dropout, channels=channels, conv_blocks=c.conv_blocks,
                                batch_norm=c.batch_norm, l2=c.l2)


def _train_scratch(job: Job, c: TrainConfig, sets, augment, n_classes, seeds: LayerSeeds):
    with seeds.building():
        model = build_model(c, n_classes)
    _compile(model, c, c.optimizer, c.learning_rate)
    steps = -(-len(sets.paths("train")) // c.batch_size)
    job.plan(_decode_plan(sets, *sets.names) + [Step(N_("train"), c.epochs * steps, "train")]
             + _evaluation_plan(sets, decoded_first=True))
    sets.decode(sets.names)  # all at once, as one phase
    checkpoint, epochs = _fit_images(job, c, model, sets, augment, c.epochs, N_("train"))
    _keep_model(job, model, checkpoint)
    return model, epochs


def _train_end_to_end(job: Job, c: TrainConfig, sets, augment, n_classes, seeds: LayerSeeds):
    """The frozen base inside the model, every batch augmented, trained end to end (Deep Learning
    with Python §5.3, the TensorFlow tutorial); for fine-tune, then the top `unfreeze` layers too."""
    with seeds.building():
        model = build_model(c, n_classes)
    _compile(model, c, c.optimizer, c.learning_rate)
    fine_tune = c.strategy == "fine-tune" and c.unfreeze > 0 and c.fine_tune_epochs > 0
    steps = -(-len(sets.paths("train")) // c.batch_size)
    job.plan(_decode_plan(sets, "train", "validation")
             + [Step(N_("head"), c.epochs * steps, "end-to-end")]
             + ([Step(N_("fine-tune"), c.fine_tune_epochs * steps, "fine-tune")] if fine_tune else [])
             + _evaluation_plan(sets))
    sets.decode(["train", "validation"])
    checkpoint, head_epochs = _fit_images(job, c, model, sets, augment, c.epochs, N_("head"))
    if not fine_tune or job.stop_requested:
        _keep_model(job, model, checkpoint)
        return model, head_epochs
    if checkpoint.best_weights is not None:
        model.set_weights(checkpoint.best_weights)  # fine-tune from the best head, as the cached path does
    models.unfreeze_top(model, c.unfreeze)
    _compile(model, c, c.fine_tune_optimizer, c.fine_tune_learning_rate)
    _log_fine_tune(job, c, model)
    head_best = checkpoint.best_record["val_accuracy"] if checkpoint.best_record else -1.0
    checkpoint2, tuned_epochs = _fit_images(job, c, model, sets, augment, c.fine_tune_epochs, N_("fine-tune"),
                                            epoch_offset=head_epochs, best=head_best)
    checkpoint2.flush()
    return model, head_epochs + tuned_epochs


def _fit_images(job: Job, c: TrainConfig, model, sets, augment, epochs: int, phase: str, epoch_offset: int = 0,
                best: float = -1.0):
    """Train `model` on the images (augmented every batch in the input pipeline); returns its
    checkpointer and the number of complete epochs."""
    x, y, _ = sets["train"]
    xv, yv, _ = sets["validation"]
    steps = -(-len(y) // c.batch_size)
    train_ds = pipeline.make_tf_dataset(x, y, c.batch_size, shuffle=True, seed=c.seed,
                                        augmentation=build_augmentation(augment, c.seed) if augment else None)
    val_ds = pipeline.make_tf_dataset(xv, yv, c.batch_size)
    checkpoint = Checkpointer(job.run_dir, model, min_interval=0)
    steps = -(-len(y) // c.batch_size)
    done = _fit(job, model, train_ds, val_ds, yv, steps, epochs, phase, checkpoint, epoch_offset=epoch_offset,
                best=best)
    return checkpoint, done


def _keep_model(job: Job, model, checkpoint: Checkpointer) -> None:
    """Save the best epoch's model; stopped inside the first epoch, what it learned so far."""
    if checkpoint.best_record is None and not job.stop_requested:
        raise RuntimeError("Training produced no epoch.")
    if checkpoint.best_record is None:
        runs.save_model(job.run_dir, model)  # stopped inside the first epoch: keep what it learned
    checkpoint.flush()


def _log_fine_tune(job: Job, c: TrainConfig, model) -> None:
    job.log(N_("Fine-tuning the top {layers} layers ({params} trainable parameters) with {optimizer} at learning "
               "rate {rate}."), layers=c.unfreeze, params=f"{models.trainable_params(model):,}",
            optimizer=c.fine_tune_optimizer, rate=f"{c.fine_tune_learning_rate:g}")


def _train_transfer(job: Job, c: TrainConfig, sets, augment, n_classes, seeds: LayerSeeds):
    """Feature extraction, and for fine-tune the second phase, on cached activations."""
    # Build: the flat transfer model, its base frozen.
    with seeds.building():
        model = build_model(c, n_classes)
    views = c.views if augment else 1
    fine_tune = c.strategy == "fine-tune" and c.unfreeze > 0 and c.fine_tune_epochs > 0

    # Extract: where the frozen part ends. For feature extraction the pooled features; for
    # fine-tuning the tensors entering the top `unfreeze` layers (everything below never changes).
    if fine_tune:
        models.unfreeze_top(model, c.unfreeze)
        prefix, suffix = models.cut_points(model, c.unfreeze)
        per_image = sum(int(np.prod(t.shape[1:])) for t in prefix.outputs) * 2 * (views + 0.5)
        n_train = len(sets.paths("train"))
        if per_image * n_train > CUT_CACHE_BYTES:
            raise ConfigError(N_("Fine-tuning {layers} layers at {size} px would need {gb} GB of cached "
                                 "activations: unfreeze fewer layers, use fewer views or a smaller image size."),
                              layers=c.unfreeze, size=c.image_size, gb=f"{per_image * n_train / 1e9:.1f}")
    else:
        prefix = models.feature_model(model)
    forward = features.compiled_forward(prefix)
    cache = feature_cache.FeatureCache(c.runs_dir, log=job.log)
    # Under mixed precision the same weights give other (float16) outputs: the output dtypes are part of the key.
    frozen_id = feature_cache.fingerprint(prefix.get_weights(), c.base,
                                          [(list(t.shape), str(t.dtype)) for t in prefix.outputs])
    keys = {split: cache.key(sets.paths(split), frozen_id, c.image_size, c.resize) for split in ("train", "validation")}
    stored = {split: cache.load(key, len(sets.paths(split))) for split, key in keys.items()}
    steps = -(-len(sets.paths("train")) // c.batch_size)
    job.plan(_features_plan(sets, stored, views) + [Step(N_("head"), c.epochs * steps, "head")]
             + ([Step(N_("fine-tune"), c.fine_tune_epochs * steps, "fine-tune")] if fine_tune else [])
             + _evaluation_plan(sets))
    sets.decode(_to_decode(stored, views))
    train_cut = _base_features(job, sets, "train", views, augment, c.seed, prefix, forward, cache, keys, stored)
    val_cut = _base_features(job, sets, "validation", 1, None, c.seed, prefix, forward, cache, keys, stored)
    y, yv = sets.labels("train"), sets.labels("validation")
    steps = -(-len(y) // c.batch_size)  # as decoded (a file may have gone bad since the scan)

    # Head: trained alone, on pooled features; its best weights go into the full model.
    if fine_tune:
        pooled = keras.Model(prefix.outputs, models.feature_layer(model).output)
        train_f, val_f = features.pool_cached(pooled, train_cut, views), features.pool_cached(pooled, val_cut, 1)
    else:
        train_f, val_f = train_cut[0], val_cut[0]
    with seeds.building():
        head = models.build_head(train_f.shape[-1], n_classes, c.dropout, head=c.head, head_units=c.head_units,
                                 l2=c.l2)
    _compile(head, c, c.optimizer, c.learning_rate)

    def head_into_model(weights):
        head.set_weights(weights)
        for name in models.head_weight_layers(head):
            model.get_layer(name).set_weights(head.get_layer(name).get_weights())

    checkpoint = Checkpointer(job.run_dir, model, before_save=head_into_model)
    head_epochs = _fit(job, head, features.view_dataset([train_f], y, c.batch_size, c.seed, views, True),
                       features.view_dataset([val_f], yv, c.batch_size, c.seed, 1, False), yv,
                       steps, c.epochs, N_("head"), checkpoint, weights_of=head)
    checkpoint.flush()
    if checkpoint.best_weights is not None:
        head_into_model(checkpoint.best_weights)
    elif job.stop_requested:
        head_into_model(head.get_weights())
        runs.save_model(job.run_dir, model)
    if not fine_tune or job.stop_requested:
        return model, head_epochs

    # Unfreeze and fine-tune: top layers + head, jointly, at a low learning rate, on the cached cut tensors.
    _compile(suffix, c, c.fine_tune_optimizer, c.fine_tune_learning_rate)
    _log_fine_tune(job, c, model)
    checkpoint2 = Checkpointer(job.run_dir, model, min_interval=0)
    head_best = checkpoint.best_record["val_accuracy"] if checkpoint.best_record else -1.0
    tuned_epochs = _fit(job, suffix, features.view_dataset(train_cut, y, c.batch_size, c.seed, views, True),
                        features.view_dataset(val_cut, yv, c.batch_size, c.seed, 1, False), yv, steps,
                        c.fine_tune_epochs, N_("fine-tune"), checkpoint2, epoch_offset=head_epochs, best=head_best)
    checkpoint2.flush()
    return model, head_epochs + tuned_epochs


FEATURE_PHASES = {"train": N_("features (train)"), "validation": N_("features (validation)")}


def _features_plan(sets: Splits, stored: dict, views: int) -> list[Step]:
    """The decoding and feature phases to come: nothing to decode or compute for what the cache holds."""
    plan = _decode_plan(sets, *_to_decode(stored, views))
    for split, n_views in (("train", views), ("validation", 1)):
        n, cached = len(sets.paths(split)), stored[split] is not None
        if not cached or n_views > 1:
            plan.append(Step(FEATURE_PHASES[split], n * (n_views - cached), "forward"))
        else:
            plan.append(Step(FEATURE_PHASES[split], n, "cache"))
    return plan


def _to_decode(stored: dict, views: int) -> list[str]:
    """The splits whose images feature extraction needs: those the cache lacks, and train for augmented views."""
    return [split for split, n_views in (("train", views), ("validation", 1))
            if stored[split] is None or n_views > 1]


def _decode_plan(sets: Splits, *splits: str) -> list[Step]:
    """One decode phase for those of these splits not decoded yet (Splits.decode)."""
    n = sum(len(sets.paths(s)) for s in splits if s in sets and not sets.decoded(s))
    return [Step(N_("decode"), n, "decode")] if n else []


def _evaluation_plan(sets: Splits, decoded_first: bool = False) -> list[Step]:
    """Decoding the evaluated split (unless `decoded_first`: with the others, before training), evaluating it."""
    split = "test" if "test" in sets else "validation"
    return ([] if decoded_first else _decode_plan(sets, split)) + [Step(N_("evaluate"), len(sets.paths(split)),
                                                                        "evaluate")]


def _base_features(job: Job, sets: Splits, split: str, views: int, augment, seed: int, prefix, forward,
                   cache: feature_cache.FeatureCache, keys: dict, stored: dict) -> list[np.ndarray]:
    """What the frozen part outputs for a split's images (per view): view 0 from the feature cache when
    it holds them, else computed and stored there (when every image of the split could be read)."""
    plain, label = stored[split], FEATURE_PHASES[split]
    skipped = len(sets.ds.skipped)
    images, _, paths = sets[split] if plain is None or views > 1 else (None, None, sets.paths(split))
    if plain is not None and len(paths) != len(plain[0]):  # a file went bad since the scan: rows would not match
        plain = None
    if plain is not None:
        job.log(N_("{phase}: read from the feature cache ({n} images, nothing to compute)."),
                phase=Message(label), n=len(plain[0]))
    out = features.extract(job, prefix, images, views, augment, seed, label, forward=forward, paths=paths,
                           plain=plain)
    complete = len(paths) == len(sets.paths(split)) and len(sets.ds.skipped) == skipped
    if plain is None and complete:
        cache.save(keys[split], [o[:, 0] if views > 1 else o for o in out])
    return out


def _fit(job: Job, model, train_ds, val_ds, val_labels, steps: int, epochs: int, phase: str, checkpoint,
         epoch_offset: int = 0, weights_of=None, best: float = -1.0) -> int:
    """model.fit with our callback; returns the number of complete epochs.

    An epoch is checkpointed only when its validation accuracy beats `best` (and the epochs before).
    """
    if epochs <= 0 or job.stop_requested:
        return 0
    job.set_phase(phase)
    callback = JobCallback(job, phase, steps, epochs, val_ds, val_labels,
                           lambda record: checkpoint(record, weights_of), epoch_offset, best)
    model.fit(train_ds, epochs=epochs, verbose=0, callbacks=[callback], shuffle=False)  # tf.data shuffles
    return callback.epochs_done


def _compile(model, c: TrainConfig, optimizer: str, learning_rate: float) -> None:
    """compile with our loss and metrics, XLA as configured, and under mixed precision the
    softmax output in float32 (float16 probabilities would round the loss of confident predictions)."""
    if keras.mixed_precision.global_policy().name == "mixed_float16":
        model.get_layer("predictions").dtype_policy = "float32"
    model.compile(make_optimizer(optimizer, learning_rate, c.momentum, c.nesterov), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile="auto" if c.xla is None else bool(c.xla))
