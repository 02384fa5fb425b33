"""Training: the three strategies, the feature cache, and the background job registry.

    scratch             the small convnet (augmentation in the graph when on)
    feature-extraction  base features computed once per image (and per augmented view) and
                        cached; the head trains on the cache, so an epoch costs milliseconds
    fine-tune           phase 1: the head on the frozen base (as above); phase 2: the top N
                        layers unfrozen and trained with the head at a low learning rate. The
                        frozen part below them is computed once and cached too.

A Job runs one training in a background thread and publishes per-batch and per-epoch metrics,
progress and ETA; the UI polls `Job.snapshot()`. Nothing here calls Streamlit.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from core import data as data_mod
from core import runs
from core.augment import AugmentConfig

STRATEGIES = ("scratch", "feature-extraction", "fine-tune")
DEFAULT_EPOCHS = {"scratch": 30, "feature-extraction": 30, "fine-tune": 10}
DEFAULT_FINE_TUNE_EPOCHS = 10
# Top layers unfrozen by default: MobileNetV2's 54 = the TF tutorial's "fine-tune from layer 100".
DEFAULT_UNFREEZE = {"mobilenet_v2": 54, "mobilenet": 12, "mobilenet_025": 12, "vgg16": 4,
                    "resnet50": 33, "efficientnet_b0": 30, "xception": 16, "inception_v3": 31}
CUT_CACHE_BYTES = 4 * 1024 ** 3  # above this, fine-tuning refuses: the cached cut tensors would not fit
KEEP_FINISHED_JOBS = 3  # finished jobs a server keeps in memory (the rest live on disk)

# ---------------------------------------------------------------- CPU threads (issue 6)
THREADS_ENV = "TRANSFERLAB_TF_THREADS"


def tf_threads() -> int | None:
    """TRANSFERLAB_TF_THREADS: threads of TensorFlow's intra- and inter-op pools and of tf.data
    ("auto": all cores but one, at least 1); None (unset or empty): TensorFlow's own default."""
    value = os.environ.get(THREADS_ENV, "").strip().lower()
    if not value:
        return None
    if value == "auto":
        return max(1, (os.cpu_count() or 2) - 1)
    try:
        return max(1, int(value))
    except ValueError:
        raise ValueError(f"{THREADS_ENV} must be a number of threads or 'auto', not '{value}'.") from None


def limit_threads() -> int | None:
    """Apply tf_threads() through the variables TensorFlow reads when it creates its runtime (its first
    op), so that a web server training in a thread keeps a core for its pages. Called at import:
    app.py imports this module before anything runs a TensorFlow op."""
    try:
        n = tf_threads()
    except ValueError as e:  # a typo in the server's settings must not stop it: say so, use the default
        print(f"Transfer Lab: {e} Using TensorFlow's default.", file=sys.stderr)
        return None
    if n is not None:
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(n)
    return n


limit_threads()


class JobBusy(RuntimeError):
    """A second training job while one is running."""


class Stopped(Exception):
    """Raised inside the job when the user asked to stop outside of model.fit."""


@dataclass
class TrainConfig:
    data: str
    strategy: str = "feature-extraction"
    base: str = "mobilenet_v2"
    image_size: int = 160
    resize: str = "crop"  # crop: central square, aspect kept (as ImageNet models saw); or stretch
    batch_size: int = 32
    epochs: int | None = None
    fine_tune_epochs: int | None = None
    unfreeze: int | None = None
    augment: bool = False
    augment_config: dict | None = None  # AugmentConfig fields; None = the classic settings
    views: int = 4  # augmented views per image cached for feature extraction / fine-tuning
    optimizer: str = "adam"
    learning_rate: float | None = None
    fine_tune_learning_rate: float = 1e-5
    dropout: float | None = None
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    runs_dir: str = field(default_factory=runs.default_runs_dir)
    weights: str | None = "imagenet"
    # Devices (see "devices" below): None = automatic.
    mixed_precision: bool | None = None  # mixed_float16; auto: on with GPUs of compute capability >= 7.0
    xla: bool | None = None  # jit_compile; auto: Keras' own rule (off on a CPU and under tf.distribute)
    devices: list[str] | None = None  # e.g. ["/gpu:0", "/gpu:1"]; None = every visible GPU, else the CPU
    # Decoded images (uint8) held in memory at most; beyond it, images are read from their files
    # batch by batch. None: TRANSFERLAB_MEMORY_BUDGET_MB, else half the memory available at start.
    memory_budget_mb: float | None = None

    def resolved(self) -> "TrainConfig":
        """A copy with every default filled in, checked; raises ValueError on bad values."""
        from core.models import BACKBONES

        c = TrainConfig(**asdict(self))
        if c.strategy not in STRATEGIES:
            raise ValueError(f"Unknown strategy '{c.strategy}': choose one of {', '.join(STRATEGIES)}.")
        if c.strategy == "scratch":
            c.base = "scratch"
        elif c.base not in BACKBONES:
            raise ValueError(f"Unknown base '{c.base}': choose one of {', '.join(BACKBONES)}.")
        c.epochs = DEFAULT_EPOCHS[c.strategy] if c.epochs is None else c.epochs
        if c.strategy == "fine-tune":
            c.fine_tune_epochs = DEFAULT_FINE_TUNE_EPOCHS if c.fine_tune_epochs is None else c.fine_tune_epochs
            c.unfreeze = DEFAULT_UNFREEZE.get(c.base, 20) if c.unfreeze is None else c.unfreeze
        else:
            c.fine_tune_epochs, c.unfreeze = 0, 0
        c.learning_rate = c.learning_rate or 1e-3
        c.dropout = (0.5 if c.strategy == "scratch" else 0.2) if c.dropout is None else c.dropout
        if c.augment and c.augment_config is None:
            c.augment_config = AugmentConfig.classic().to_dict()
        for name, low in (("image_size", 16), ("batch_size", 1), ("epochs", 0), ("views", 1)):
            if int(getattr(c, name)) < low:
                raise ValueError(f"--{name.replace('_', '-')} must be at least {low}.")
        if c.strategy == "scratch" and c.image_size < 48:
            raise ValueError("The scratch convnet needs images of at least 48 px (four conv + pool stages).")
        if c.resize not in ("crop", "stretch"):
            raise ValueError(f"Unknown resize mode '{c.resize}': choose crop or stretch.")
        if not 0 <= c.dropout < 1:
            raise ValueError("Dropout must be between 0 and 1.")
        if c.memory_budget_mb is not None and c.memory_budget_mb < 0:
            raise ValueError("--memory-budget-mb must be 0 or more.")
        data_mod.memory_budget(c.memory_budget_mb)  # a bad TRANSFERLAB_MEMORY_BUDGET_MB fails here
        return c


# ---------------------------------------------------------------- the job

class Job:
    """One training: its state, metric history and stop flag, shared with the UI thread."""

    def __init__(self, config: TrainConfig, echo=None):
        self.id = uuid.uuid4().hex[:8]
        self.config = config
        self.state = "queued"  # queued, running, stopping, finished, stopped, failed
        self.phase = ""
        self.phase_progress = 0.0
        self.eta_seconds: float | None = None
        self.batches: list[dict] = []
        self.epochs: list[dict] = []
        self.logs: list[str] = []
        self.error: str | None = None
        self.input_error = False  # the error was caused by the user's data or settings
        self.run_dir: str | None = None
        self.result: dict | None = None
        self.started = time.time()
        self.finished: float | None = None
        self._stop = threading.Event()
        # Re-entrant: the CLI's signal handler calls request_stop() in the training thread itself,
        # possibly while that thread holds the lock.
        self._lock = threading.RLock()
        self._phase_started = time.time()
        self._echo = echo
        self.thread: threading.Thread | None = None

    # -- called from the UI / CLI
    def request_stop(self) -> None:
        with self._lock:
            if self.state not in ("queued", "running"):
                return  # already stopping, or over
            self.state = "stopping"
        self._stop.set()
        self.log("Stop requested: finishing the current batch.")

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    @property
    def active(self) -> bool:
        return self.state in ("queued", "running", "stopping")

    def snapshot(self) -> dict:
        """A consistent copy of everything the UI shows."""
        with self._lock:
            return {
                "id": self.id, "state": self.state, "phase": self.phase,
                "phase_progress": self.phase_progress, "eta_seconds": self.eta_seconds,
                "batches": list(self.batches), "epochs": list(self.epochs), "logs": list(self.logs),
                "error": self.error, "run_dir": self.run_dir, "result": self.result,
                "config": asdict(self.config), "started": self.started, "finished": self.finished,
            }

    # -- called from the training thread
    def log(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        with self._lock:
            self.logs.append(line)
        if self._echo:
            self._echo(line)

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase, self.phase_progress, self.eta_seconds = phase, 0.0, None
            self._phase_started = time.time()
        self.log(f"Phase: {phase}")

    def set_progress(self, done: float, total: float) -> None:
        fraction = min(1.0, done / total) if total else 1.0
        elapsed = time.time() - self._phase_started
        with self._lock:
            self.phase_progress = fraction
            self.eta_seconds = elapsed * (1 - fraction) / fraction if fraction > 0 else None

    def add_batch(self, record: dict) -> None:
        with self._lock:
            self.batches.append(record)

    def add_epoch(self, record: dict) -> None:
        with self._lock:
            self.epochs.append(record)
        if self.run_dir:
            runs.append_history(self.run_dir, record)
        parts = [f"{k} {v:.4f}" for k, v in record.items()
                 if k in ("loss", "accuracy", "val_loss", "val_accuracy") and v is not None]
        self.log(f"{record['phase']} epoch {record['epoch']}{' (partial)' if record.get('partial') else ''}: "
                 + ", ".join(parts))

    def check_stop(self) -> None:
        if self.stop_requested:
            raise Stopped()

    def run(self) -> dict | None:
        """Train synchronously in this thread (the CLI calls this; start() wraps it in a thread)."""
        with self._lock:
            if self.state == "queued":
                self.state = "running"
        try:
            self.result = train(self.config, self)
            final = runs.STOPPED if self.stop_requested else runs.FINISHED
        except Stopped:  # stopped before the first epoch (scan, decode): nothing to keep, not an error
            final = runs.STOPPED
            self.log("Stopped before training began: nothing to keep.")
            if self.run_dir:
                runs.write_status(self.run_dir, state=runs.STOPPED, finished=time.time())
        except Exception as e:
            final = runs.FAILED
            with self._lock:
                self.error = readable_error(e)
                self.input_error = is_input_error(e)
            self.log(f"Error: {self.error}")
            if self.run_dir:
                runs.write_status(self.run_dir, state=runs.FAILED, error=self.error,
                                  traceback=traceback.format_exc(limit=8))
        with self._lock:
            self.state = final
            self.finished = time.time()
        return self.result


def is_input_error(e: BaseException) -> bool:
    from core.models import WeightsUnavailable

    return isinstance(e, (data_mod.DatasetError, WeightsUnavailable, ValueError, FileNotFoundError))


def readable_error(e: BaseException) -> str:
    """One sentence a user can act on, for the errors a user can cause."""
    import tensorflow as tf

    if is_input_error(e):
        return str(e)
    if is_out_of_memory(e):
        where = "GPU memory" if tf.config.list_physical_devices("GPU") and not isinstance(e, MemoryError) else "memory"
        return (f"Out of {where}: try a smaller batch size or image size "
                f"({type(e).__name__}).")
    return f"{type(e).__name__}: {e}"


def is_out_of_memory(e: BaseException) -> bool:
    """TensorFlow's allocation failures: ResourceExhaustedError, or an OOM inside another error."""
    import tensorflow as tf

    if isinstance(e, (tf.errors.ResourceExhaustedError, MemoryError)):
        return True
    text = str(e)
    return "OOM when allocating" in text or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


class JobRegistry:
    """Process-wide and thread-safe: at most one active training job at a time."""

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._latest: str | None = None

    def start(self, config: TrainConfig) -> Job:
        config = config.resolved()  # bad settings fail here, in the caller's thread
        with self._lock:
            busy = self.active()
            if busy:
                raise JobBusy(f"A training job is already running ({busy.config.strategy}, "
                              f"{busy.config.base}, started {time.strftime('%H:%M:%S', time.localtime(busy.started))}). "
                              "Wait for it to finish or stop it first.")
            job = Job(config)
            # Forget all but the last few finished jobs: their history is in their run folders.
            for old in [j for j in self._jobs.values() if not j.active][:-KEEP_FINISHED_JOBS]:
                del self._jobs[old.id]
            self._jobs[job.id] = job
            self._latest = job.id
            job.thread = threading.Thread(target=job.run, name=f"train-{job.id}", daemon=True)
            job.thread.start()
        return job

    def active(self) -> Job | None:
        return next((j for j in self._jobs.values() if j.active), None)

    def latest(self) -> Job | None:
        return self._jobs.get(self._latest) if self._latest else None

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def active_run_dirs(self) -> list[str]:
        return [j.run_dir for j in self._jobs.values() if j.active and j.run_dir]


REGISTRY = JobRegistry()


# ---------------------------------------------------------------- TensorFlow set-up

_configured = False


def configure_tensorflow() -> str:
    """GPU memory growth on; returns a short description of the training device."""
    global _configured
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not _configured:
        _configured = True
        tf.get_logger().setLevel("ERROR")
        for gpu in gpus:
            try:
                tf.config.experimental.set_memory_growth(gpu, True)
            except RuntimeError:
                pass  # already initialised
    return describe_devices(gpu_details() if gpus else [])


# ---------------------------------------------------------------- devices: GPUs, mixed precision, XLA
#
# One GPU: the default strategy (Keras places everything on it). Several GPUs: MirroredStrategy,
# one replica per GPU, the batch size scaled by the number of replicas. Mixed precision
# (mixed_float16, the output layer kept in float32) on by default only where tensor cores pay
# for it; XLA left to Keras' "auto" (off on a CPU, where it measured slower, and under
# tf.distribute). See docs/SCALING.md.

def gpu_details() -> list[dict]:
    """Visible GPUs: TensorFlow's device name, the card's name and its compute capability."""
    import tensorflow as tf

    out = []
    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            details = tf.config.experimental.get_device_details(gpu)
        except Exception:  # noqa: BLE001  details are informative only
            details = {}
        out.append({"device": gpu.name, "name": details.get("device_name") or gpu.name,
                    "compute_capability": details.get("compute_capability")})
    return out


def describe_devices(gpus: list[dict]) -> str:
    """'CPU (2 cores)', 'GPU (NVIDIA H100, compute 9.0)', '2 GPUs (2x NVIDIA A100, compute 8.0; MirroredStrategy)'."""
    if not gpus:
        return f"CPU ({os.cpu_count()} cores)"
    names = sorted({g["name"] for g in gpus})
    cc = sorted({".".join(map(str, g["compute_capability"])) for g in gpus if g["compute_capability"]})
    what = ", ".join(names) + (f", compute {'/'.join(cc)}" if cc else "")
    if len(gpus) == 1:
        return f"GPU ({what})"
    return f"{len(gpus)} GPUs ({len(gpus)}x {what}; MirroredStrategy)"


def mixed_precision_helps(gpus: list[dict] | None = None) -> bool:
    """True when every visible GPU has tensor cores (compute capability 7.0 or later); never on a CPU."""
    gpus = gpu_details() if gpus is None else gpus
    return bool(gpus) and all(tuple(g["compute_capability"] or (0, 0)) >= (7, 0) for g in gpus)


def pick_strategy(devices: list[str] | None = None):
    """The tf.distribute strategy to train under.

    devices None: MirroredStrategy over every visible GPU when there are several, else the
    default strategy (one GPU, or the CPU). devices given (["/gpu:0", "/gpu:1"], or logical CPU
    devices in the tests): MirroredStrategy over them, OneDeviceStrategy for just one.
    Raises ValueError for a device this machine does not have.
    """
    import tensorflow as tf

    if devices is None:
        names = [d.name for d in tf.config.list_logical_devices("GPU")]
        if len(names) < 2:
            return tf.distribute.get_strategy()
    else:
        names = [_known_device(d) for d in devices]
        if not names:
            raise ValueError("No device given: name at least one, e.g. /gpu:0.")
    if len(names) == 1:
        return tf.distribute.OneDeviceStrategy(names[0])
    return tf.distribute.MirroredStrategy(names)


def _known_device(name: str) -> str:
    import tensorflow as tf

    known = {d.name: d for d in tf.config.list_logical_devices()}
    try:
        spec = tf.DeviceSpec.from_string(name)
    except ValueError:
        spec = None
    for full, d in known.items():
        if spec and spec.device_type and d.device_type == spec.device_type.upper() \
                and int(full.rsplit(":", 1)[-1]) == (spec.device_index or 0):
            return full
    raise ValueError(f"Unknown device '{name}': this machine has {', '.join(known)}.")


def global_batch(batch: int, replicas: int, smallest_split: int) -> int:
    """The batch of all replicas together: the batch per replica times the replicas.

    Keras (3.15) averages the first batch of each dataset across replicas to build its metrics,
    which fails unless that batch splits evenly. So with several replicas, a split smaller than
    the global batch lowers it to the largest multiple of the replicas that the split fills.
    """
    total = batch * replicas
    if replicas == 1 or smallest_split >= total:
        return total
    if smallest_split < replicas:
        raise ValueError(f"Training on {replicas} replicas needs at least {replicas} training and "
                         f"{replicas} validation images (the smallest split has {smallest_split}).")
    return smallest_split - smallest_split % replicas


@contextlib.contextmanager
def precision_policy(mixed: bool):
    """Keras' dtype policy for models built inside (thread-local: other threads keep theirs)."""
    import keras

    before = keras.mixed_precision.global_policy()
    if mixed:
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(before)


def _compile(model, c: "TrainConfig", learning_rate: float) -> None:
    """compile with our loss and metrics, XLA as configured, and under mixed precision the
    softmax output in float32 (float16 probabilities would round the loss of confident predictions)."""
    import keras

    if keras.mixed_precision.global_policy().name == "mixed_float16":
        model.get_layer("predictions").dtype_policy = "float32"
    model.compile(_optimizer(c.optimizer, learning_rate), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"], jit_compile="auto" if c.xla is None else bool(c.xla))


# ---------------------------------------------------------------- callbacks

def _callback_class():
    import keras

    class JobCallback(keras.callbacks.Callback):
        """Publishes metrics, honours stop within one batch, validates and checkpoints each epoch."""

        def __init__(self, job: Job, phase: str, steps: int, epochs: int, val_data, val_labels, on_best,
                     epoch_offset: int = 0):
            super().__init__()
            self.job, self.phase, self.steps, self.epochs = job, phase, steps, epochs
            self.val_data, self.val_labels = val_data, val_labels
            self.on_best, self.epoch_offset = on_best, epoch_offset
            self.best = -1.0
            self.epochs_done = 0
            self._epoch, self._epoch_start, self._last_batch = 0, 0.0, -1

        def on_epoch_begin(self, epoch, logs=None):
            self._epoch, self._epoch_start, self._last_batch = epoch, time.time(), -1

        def on_train_batch_end(self, batch, logs=None):
            logs = logs or {}
            self._last_batch = batch
            self.job.add_batch({"phase": self.phase, "epoch": self.epoch_offset + self._epoch + 1,
                                "batch": batch + 1, "step": self._epoch * self.steps + batch + 1,
                                "loss": float(logs.get("loss", np.nan)),
                                "accuracy": float(logs.get("accuracy", np.nan)), "time": time.time()})
            self.job.set_progress(self._epoch * self.steps + batch + 1, self.epochs * self.steps)
            if self.job.stop_requested:
                self.model.stop_training = True

        def on_epoch_end(self, epoch, logs=None):
            logs = dict(logs or {})
            partial = self.job.stop_requested and self._last_batch + 1 < self.steps
            record = {"phase": self.phase, "epoch": self.epoch_offset + epoch + 1,
                      "loss": float(logs.get("loss", np.nan)), "accuracy": float(logs.get("accuracy", np.nan)),
                      "val_loss": None, "val_accuracy": None, "partial": partial,
                      "seconds": round(time.time() - self._epoch_start, 3)}
            if not self.job.stop_requested:  # a stop skips validation: stop means now
                probs = predict_all(self.model, self.val_data, len(self.val_labels))
                val = metrics_from_probs(probs, self.val_labels, [""] * probs.shape[-1])
                record["val_loss"], record["val_accuracy"] = val["loss"], val["accuracy"]
                if record["val_accuracy"] > self.best:
                    self.best = record["val_accuracy"]
                    self.on_best(record)
            if not partial:
                self.epochs_done += 1
            self.job.add_epoch(record)

    return JobCallback


def _optimizer(name: str, lr: float):
    import keras

    name = name.lower()
    if name == "adam":
        return keras.optimizers.Adam(lr)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(lr)
    if name == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9)
    raise ValueError(f"Unknown optimizer '{name}': choose adam, rmsprop or sgd.")


class Checkpointer:
    """Keeps the best weights in memory and writes the model to disk at most every min_interval s."""

    def __init__(self, run_dir: str, model, before_save=None, min_interval: float = 5.0):
        self.run_dir, self.model, self.before_save = run_dir, model, before_save
        self.min_interval = min_interval
        self.best_weights = None
        self.best_record = None
        self._saved_record = None
        self._last_save = 0.0

    def __call__(self, record: dict, weights_of=None) -> None:
        self.best_weights = (weights_of or self.model).get_weights()
        self.best_record = record
        if time.time() - self._last_save >= self.min_interval:
            self.flush()

    def flush(self) -> None:
        if self.best_record is None or self._saved_record is self.best_record:
            return
        if self.before_save:
            self.before_save(self.best_weights)
        else:
            self.model.set_weights(self.best_weights)
        runs.save_model(self.run_dir, self.model)
        runs.write_status(self.run_dir, best_epoch=self.best_record["epoch"],
                          best_phase=self.best_record["phase"], best_val_accuracy=self.best_record["val_accuracy"])
        self._saved_record = self.best_record
        self._last_save = time.time()


def _fit(job: Job, model, train_ds, val_ds, val_labels, steps: int, epochs: int, phase: str, checkpoint,
         epoch_offset: int = 0, weights_of=None, best: float = -1.0) -> int:
    """model.fit with our callback; returns the number of complete epochs.

    An epoch is checkpointed only when its validation accuracy beats `best` (and the epochs before).
    """
    if epochs <= 0 or job.stop_requested:
        return 0
    job.set_phase(phase)
    cb = _callback_class()(job, phase, steps, epochs, val_ds, val_labels,
                           lambda rec: checkpoint(rec, weights_of), epoch_offset)
    cb.best = best
    model.fit(train_ds, epochs=epochs, verbose=0, callbacks=[cb], shuffle=False)  # tf.data shuffles
    return cb.epochs_done


# ---------------------------------------------------------------- feature cache

def _batched(n: int, batch: int):
    for start in range(0, n, batch):
        yield slice(start, min(n, start + batch))


def _ahead(images, slices):
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
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(x):
        return model(x, training=False)

    return forward


def _extract(job: Job, model, images: np.ndarray, views: int, augment: AugmentConfig | None,
             seed: int, label: str, batch: int = 64, forward=None) -> list[np.ndarray]:
    """model(images) once per view, in batches; view 0 is the image itself, others augmented.

    `forward`: compiled_forward(model), to reuse one already traced.
    Returns one array per model output, shaped [N, views, ...] (or [N, ...] when views == 1).
    """
    import tensorflow as tf

    from core.augment import build_augmentation

    aug = build_augmentation(augment, seed=seed) if views > 1 and augment else None
    n = len(images)
    outs = None
    total = n * views
    done = 0
    job.set_phase(label)
    forward = forward or compiled_forward(model)

    @tf.function(reduce_retracing=True)
    def forward_augmented(x):
        return model(aug(x, training=True), training=False)

    for view in range(views):
        for sl, rows in _ahead(images, _batched(n, batch)):
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
            job.set_progress(done, total)
    return [o[:, 0] if views == 1 else o for o in outs]


def _view_dataset(arrays: list[np.ndarray], labels: np.ndarray, batch_size: int, seed: int,
                  views: int, shuffle: bool):
    """tf.data over cached arrays (not copied); with several views, each epoch picks one view per sample."""
    import tensorflow as tf

    inputs = tuple(arrays) if len(arrays) > 1 else arrays[0]
    return data_mod.batch_dataset(inputs, labels, batch_size, shuffle, seed, views).prefetch(tf.data.AUTOTUNE)


# ---------------------------------------------------------------- evaluation

def evaluate(model, images, labels: np.ndarray, paths: list[str], classes: list[str],
             batch_size: int = 64) -> tuple[dict, list[dict]]:
    """(metrics, per-image predictions) on a split, batch by batch (no float32 copy of the split)."""
    probs = predict_all(model, data_mod.batch_dataset(images, labels, batch_size), len(labels))
    return metrics_from_probs(probs, labels, classes), [
        {"path": p, "true": int(t), "pred": int(np.argmax(pr)), "probs": [round(float(v), 5) for v in pr]}
        for p, t, pr in zip(paths, labels, probs)]


def predict_all(model, dataset, n: int) -> np.ndarray:
    """Probabilities of the first n samples of a batch_dataset, in order (it may be padded)."""
    return np.asarray(model.predict(dataset, verbose=0))[:n].astype(np.float32)


def metrics_from_probs(probs: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict:
    n = len(classes)
    pred = probs.argmax(axis=1)
    eps = 1e-7
    loss = float(-np.mean(np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1)))) if len(labels) else None
    cm = np.zeros((n, n), int)
    for t, p in zip(labels, pred):
        cm[t, p] += 1
    per_class = {}
    for i, c in enumerate(classes):
        tp, fp, fn = cm[i, i], cm[:, i].sum() - cm[i, i], cm[i, :].sum() - cm[i, i]
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        per_class[c] = {"precision": float(precision), "recall": float(recall),
                        "f1": float(2 * precision * recall / (precision + recall)) if precision + recall else 0.0,
                        "support": int(cm[i, :].sum())}
    return {"loss": loss, "accuracy": float((pred == labels).mean()) if len(labels) else None,
            "count": int(len(labels)), "classes": classes, "per_class": per_class,
            "confusion_matrix": cm.tolist()}


# ---------------------------------------------------------------- the strategies

def train(config: TrainConfig, job: Job) -> dict:
    """Run one training to the end (or to a stop) and return the result the CLI prints."""
    import keras

    t0 = time.time()
    c = config.resolved()
    job.config = c
    device = configure_tensorflow()
    strategy = pick_strategy(c.devices)  # an unknown device fails here, before any run folder
    replicas = int(strategy.num_replicas_in_sync)
    mixed = mixed_precision_helps() if c.mixed_precision is None else bool(c.mixed_precision)
    keras.utils.set_random_seed(c.seed)
    job.set_phase("scan")
    ds = data_mod.scan(c.data, c.val_fraction, c.test_fraction, c.seed)
    job.log(f"Dataset {ds.root}: {ds.summary()}")
    for w in ds.warnings:
        job.log(f"Note: {w}")
    if not ds.splits["validation"]:
        raise data_mod.DatasetError("No validation images: add a validation folder or more images per class.")
    smallest = min(len(ds.splits["train"]), len(ds.splits["validation"]))
    acceleration = {"replicas": replicas, "strategy": type(strategy).__name__,
                    "global_batch_size": global_batch(c.batch_size, replicas, smallest),
                    "mixed_precision": mixed, "xla": "auto" if c.xla is None else bool(c.xla)}

    job.run_dir = runs.create_run(c.runs_dir, {**asdict(c), "classes": ds.classes, "device": device,
                                                "acceleration": acceleration,
                                                "dataset": {"root": ds.root, "layout": ds.layout,
                                                            "counts": ds.counts()}})
    job.log(f"Run folder: {job.run_dir} (training on {device})")
    if replicas > 1:
        job.log(f"{replicas} replicas ({acceleration['strategy']}): batch {c.batch_size} per replica, "
                f"{acceleration['global_batch_size']} in all.")
    job.log(f"Mixed precision {'on' if mixed else 'off'}; XLA {acceleration['xla']}.")

    sets = _decode_or_stream(job, c, ds)
    if len(sets["train"][1]) == 0 or len(sets["validation"][1]) == 0:
        raise data_mod.DatasetError("No images could be decoded for training or validation.")
    runs.write_json(os.path.join(job.run_dir, "skipped.json"), [asdict(s) for s in ds.skipped])
    skipped_before = len(ds.skipped)
    if ds.skipped:
        job.log(f"{len(ds.skipped)} files skipped (see skipped.json).")

    augment = AugmentConfig.from_dict(c.augment_config) if c.augment else None
    n_classes = len(ds.classes)
    smallest = min(len(sets["train"][1]), len(sets["validation"][1]))  # after decoding
    scaled = replace(c, batch_size=global_batch(c.batch_size, replicas, smallest))  # split across replicas
    try:
        with strategy.scope(), precision_policy(mixed):  # models are built and compiled inside
            if c.strategy == "scratch":
                model, epochs_run = _train_scratch(job, scaled, sets, augment, n_classes)
            else:
                model, epochs_run = _train_transfer(job, scaled, sets, augment, n_classes)
    except Stopped:
        model, epochs_run = None, 0
        job.log("Stopped before training began: nothing to keep.")

    result = {"run_dir": job.run_dir, "strategy": c.strategy, "base": c.base, "image_size": c.image_size,
              "epochs_run": epochs_run, "seconds": None, "val_accuracy": None, "test_accuracy": None,
              "test_loss": None, "evaluated_on": "test" if "test" in sets else "validation",
              "skipped": len(ds.skipped), "device": device, "replicas": replicas, "mixed_precision": mixed}
    status = read_best(job.run_dir)
    result["val_accuracy"] = status.get("best_val_accuracy")
    if model is not None and os.path.exists(os.path.join(job.run_dir, "model.keras")):
        job.set_phase("evaluate")
        images, labels, paths = sets[result["evaluated_on"]]
        best = runs.load_model(job.run_dir)
        metrics, predictions = evaluate(best, images, labels, paths, ds.classes, c.batch_size)
        metrics["evaluated_on"] = result["evaluated_on"]
        runs.write_json(os.path.join(job.run_dir, "metrics.json"), metrics)
        runs.write_json(os.path.join(job.run_dir, "predictions.json"), predictions)
        result["test_accuracy"], result["test_loss"] = metrics["accuracy"], metrics["loss"]
    if len(ds.skipped) > skipped_before:  # files that went bad while they were streamed
        runs.write_json(os.path.join(job.run_dir, "skipped.json"), [asdict(s) for s in ds.skipped])
        job.log(f"{len(ds.skipped) - skipped_before} more files could not be read during training "
                "(see skipped.json).")
    result["seconds"] = round(time.time() - t0, 2)
    runs.write_status(job.run_dir, state=runs.STOPPED if job.stop_requested else runs.FINISHED,
                      result=result, finished=time.time())
    job.log(f"Done in {result['seconds']:.1f} s: validation {result['val_accuracy']}, "
            f"{result['evaluated_on']} {result['test_accuracy']}")
    return result


def _decode_or_stream(job: Job, c: TrainConfig, ds) -> dict:
    """{split: (images, labels, paths)}: decoded once into memory when every split fits the memory
    budget (the fast path), else FileImages that decode from the files batch by batch."""
    splits = [s for s in ("train", "validation", "test") if ds.splits.get(s)]
    need = data_mod.decoded_bytes(sum(len(ds.splits[s]) for s in splits), c.image_size)
    budget = data_mod.memory_budget(c.memory_budget_mb)
    if need > budget:
        job.log(f"The decoded images would take {need / 1e6:,.0f} MB, over the memory budget of "
                f"{budget / 1e6:,.0f} MB: reading them from the files batch by batch instead "
                "(slower epochs for scratch training; set --memory-budget-mb or "
                f"{data_mod.BUDGET_ENV} to change the budget).")
        return {s: data_mod.file_images(ds.splits[s], c.image_size, ds.skipped, c.resize) for s in splits}
    job.set_phase("decode")
    sets = {}
    for split in splits:
        sets[split] = data_mod.load_arrays(ds.splits[split], c.image_size, ds.skipped,
                                           progress=job.set_progress, resize=c.resize)
        job.check_stop()
    return sets


def read_best(run_dir: str) -> dict:
    return runs.read_json(os.path.join(run_dir, "status.json"), {}) or {}


def _train_scratch(job, c: TrainConfig, sets, augment, n_classes):
    from core import models

    from core.augment import build_augmentation

    model = models.build_scratch(c.image_size, n_classes, c.dropout)
    _compile(model, c, c.learning_rate)
    x, y, _ = sets["train"]
    xv, yv, _ = sets["validation"]
    train_ds = data_mod.make_tf_dataset(x, y, c.batch_size, shuffle=True, seed=c.seed,
                                        augmentation=build_augmentation(augment, c.seed) if augment else None)
    val_ds = data_mod.make_tf_dataset(xv, yv, c.batch_size)
    checkpoint = Checkpointer(job.run_dir, model, min_interval=0)
    steps = -(-len(y) // c.batch_size)
    epochs = _fit(job, model, train_ds, val_ds, yv, steps, c.epochs, "train", checkpoint)
    if checkpoint.best_record is None and not job.stop_requested:
        raise RuntimeError("Training produced no epoch.")
    if checkpoint.best_record is None:
        runs.save_model(job.run_dir, model)  # stopped inside the first epoch: keep what it learned
    checkpoint.flush()
    return model, epochs


def _train_transfer(job, c: TrainConfig, sets, augment, n_classes):
    """Feature extraction, and for fine-tune the second phase, on cached activations."""
    import keras

    from core import models

    model = models.build_transfer(c.base, c.image_size, n_classes, c.dropout, c.weights)
    views = c.views if augment else 1
    x, y, _ = sets["train"]
    xv, yv, _ = sets["validation"]
    fine_tune = c.strategy == "fine-tune" and c.unfreeze > 0 and c.fine_tune_epochs > 0

    # Where the frozen part ends: for feature extraction the pooled features; for fine-tuning
    # the tensors entering the top `unfreeze` layers (everything below never changes).
    if fine_tune:
        models.unfreeze_top(model, c.unfreeze)
        prefix, suffix = models.cut_points(model, c.unfreeze)
        per_image = sum(int(np.prod(t.shape[1:])) for t in prefix.outputs) * 2 * (views + 0.5)
        if per_image * len(y) > CUT_CACHE_BYTES:
            raise ValueError(f"Fine-tuning {c.unfreeze} layers at {c.image_size} px would need "
                             f"{per_image * len(y) / 1e9:.1f} GB of cached activations: unfreeze fewer "
                             "layers, use fewer views or a smaller image size.")
    else:
        prefix = models.feature_model(model)
    forward = compiled_forward(prefix)
    train_cut = _extract(job, prefix, x, views, augment, c.seed, "features (train)", forward=forward)
    val_cut = _extract(job, prefix, xv, 1, None, c.seed, "features (validation)", forward=forward)

    # Phase 1: the head alone, on pooled features.
    if fine_tune:
        pooled = keras.Model(prefix.outputs, model.get_layer("head_pool").output)
        train_f, val_f = _pool_cached(pooled, train_cut, views), _pool_cached(pooled, val_cut, 1)
    else:
        train_f, val_f = train_cut[0], val_cut[0]
    head = models.build_head(train_f.shape[-1], n_classes, c.dropout)
    _compile(head, c, c.learning_rate)
    full_head = model.get_layer("predictions")

    def head_into_model(weights):
        head.set_weights(weights)
        full_head.set_weights(head.get_layer("predictions").get_weights())

    checkpoint = Checkpointer(job.run_dir, model, before_save=head_into_model)
    steps = -(-len(y) // c.batch_size)
    head_epochs = _fit(job, head, _view_dataset([train_f], y, c.batch_size, c.seed, views, True),
                       _view_dataset([val_f], yv, c.batch_size, c.seed, 1, False), yv,
                       steps, c.epochs, "head", checkpoint, weights_of=head)
    checkpoint.flush()
    if checkpoint.best_weights is not None:
        head_into_model(checkpoint.best_weights)
    elif job.stop_requested:
        head_into_model(head.get_weights())
        runs.save_model(job.run_dir, model)
    if not fine_tune or job.stop_requested:
        return model, head_epochs

    # Phase 2: top layers + head, jointly, at a low learning rate, on the cached cut tensors.
    _compile(suffix, c, c.fine_tune_learning_rate)
    job.log(f"Fine-tuning the top {c.unfreeze} layers ({models.trainable_params(model):,} trainable "
            f"parameters) at learning rate {c.fine_tune_learning_rate:g}.")
    checkpoint2 = Checkpointer(job.run_dir, model, min_interval=0)
    head_best = checkpoint.best_record["val_accuracy"] if checkpoint.best_record else -1.0
    tuned_epochs = _fit(job, suffix, _view_dataset(train_cut, y, c.batch_size, c.seed, views, True),
                        _view_dataset(val_cut, yv, c.batch_size, c.seed, 1, False), yv, steps,
                        c.fine_tune_epochs, "fine-tune", checkpoint2, epoch_offset=head_epochs, best=head_best)
    checkpoint2.flush()
    return model, head_epochs + tuned_epochs


def _pool_cached(pooled_model, arrays: list[np.ndarray], views: int) -> np.ndarray:
    """Pooled features from cached cut tensors (cheap: only the top layers run), batch by batch."""
    if views == 1:
        inputs = tuple(arrays) if len(arrays) > 1 else arrays[0]
        return pooled_model.predict(data_mod.batch_dataset(inputs, np.zeros(len(arrays[0]), np.int32), 256),
                                    verbose=0)
    return np.stack([_pool_cached(pooled_model, [a[:, v] for a in arrays], 1) for v in range(views)], axis=1)
