"""Training jobs: the settings of one training, the job that runs it in the background, and the
registry that allows one at a time per server.

No TensorFlow here, so that pages import this module cheaply: the engine (core.training) is
imported when the first job runs. A Job is shared between its training thread and every browser
session polling it; everything it holds is read and written under its lock, and the UI reads one
consistent copy through `Job.snapshot()`. Nothing here calls Streamlit.
"""
from __future__ import annotations

import errno
import os
import sys
import threading
import time
import traceback
import uuid
from dataclasses import asdict, dataclass, field

from core import data as data_mod
from core import pipeline, runs
from core.augment import AugmentConfig
from core.backbones import BACKBONES, WeightsUnavailable
from core.messages import ConfigError, Explained, Message, N_, as_message, message_of

# ---------------------------------------------------------------- settings and their defaults

STRATEGIES = ("scratch", "feature-extraction", "fine-tune")
STRATEGY_LABELS = {"scratch": N_("From scratch"), "feature-extraction": N_("Feature extraction"),
                   "fine-tune": N_("Fine-tuning")}
OPTIMIZERS = ("adam", "rmsprop", "sgd", "adagrad", "adadelta")
RESIZE_MODES = ("crop", "stretch")
HEADS = ("pooling", "flatten_dense")  # transfer heads: global average pooling | Flatten -> Dense N -> Dropout
HEAD_LABELS = {"pooling": N_("Global average pooling"), "flatten_dense": N_("Flatten, Dense, Dropout")}
NETWORKS = ("convnet", "dense")  # what "scratch" trains: the small convnet or a plain dense network
NETWORK_LABELS = {"convnet": N_("Small convnet"), "dense": N_("Dense network")}
COLOR_MODES = ("rgb", "grayscale")
COLOR_MODE_LABELS = {"rgb": N_("Colour (RGB)"), "grayscale": N_("Grayscale (one channel)")}
DEFAULT_EPOCHS = {"scratch": 30, "feature-extraction": 30, "fine-tune": 10}
DEFAULT_FINE_TUNE_EPOCHS = 10
DEFAULT_LEARNING_RATE = 1e-3
DEFAULT_DROPOUT = {"scratch": 0.5, "feature-extraction": 0.2, "fine-tune": 0.2}
SCRATCH_MIN_SIZE = 48  # px: the scratch convnet's four conv + pool stages need at least this
# The smallest image each number of conv + pool blocks takes (3x3 valid conv, then 2x2 pooling, down
# to at least 1 px); four blocks keep the 48 px the convnet has always asked for.
CONV_BLOCKS_MIN_SIZE = {1: 4, 2: 10, 3: 22, 4: SCRATCH_MIN_SIZE}
KEEP_FINISHED_JOBS = 3  # finished jobs a server keeps in memory (the rest live on disk)


@dataclass
class TrainConfig:
    """One training's settings. None means "the default for this strategy / base", filled in by
    resolved(); the command line and the Train page show the defaults of DEFAULTS below."""
    data: str
    strategy: str = "feature-extraction"
    base: str = "mobilenet_v2"
    image_size: int = 160
    resize: str = "crop"  # crop: central square, aspect kept (as ImageNet models saw); or stretch
    batch_size: int = 32
    epochs: int | None = None  # DEFAULT_EPOCHS of the strategy
    fine_tune_epochs: int | None = None  # DEFAULT_FINE_TUNE_EPOCHS
    unfreeze: int | None = None  # the base's Backbone.default_unfreeze
    augment: bool = False
    augment_config: dict | None = None  # AugmentConfig fields; None = the classic settings
    views: int = 4  # augmented views per image cached for feature extraction / fine-tuning
    optimizer: str = "adam"  # the whole training, or for fine-tune its first (head) phase
    learning_rate: float | None = None  # DEFAULT_LEARNING_RATE
    fine_tune_optimizer: str | None = None  # the fine-tune phase's; None = the same as `optimizer`
    fine_tune_learning_rate: float = 1e-5
    momentum: float = 0.9  # sgd's, in either phase
    nesterov: bool = False  # sgd's
    dropout: float | None = None  # DEFAULT_DROPOUT of the strategy
    l2: float = 0.0  # L2 weight decay: a kernel regularizer on the layers trained from scratch (not the base's)
    head: str = "pooling"  # transfer models: one of HEADS
    head_units: int = 256  # the Dense layer of the flatten_dense head
    network: str = "convnet"  # scratch: one of NETWORKS
    conv_blocks: int = 4  # the small convnet's conv + pool blocks (fewer for small images, e.g. 3 at 28 px)
    batch_norm: bool = False  # BatchNormalization after each conv of the small convnet
    color_mode: str = "rgb"  # grayscale: one channel (scratch only; pretrained bases take RGB)
    per_class: int | None = None  # train on N images per class (a seeded subset of the training split)
    # The frozen base inside the model, run on every batch with augmentation every batch, trained end
    # to end (Deep Learning with Python §5.3, the TensorFlow tutorial): slow, as published. Off: the
    # base runs once per image (and per cached augmented view), which is much faster.
    end_to_end: bool = False
    # The recipe (core.recipes) this configuration started from, and the settings changed from it.
    recipe: str | None = None
    recipe_version: int | None = None
    recipe_changes: list[str] | None = None
    seed: int = 0
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    runs_dir: str = field(default_factory=runs.default_runs_dir)
    weights: str | None = "imagenet"
    # Devices (see core.devices): None = automatic.
    mixed_precision: bool | None = None  # mixed_float16; auto: on with GPUs of compute capability >= 7.0
    xla: bool | None = None  # jit_compile; auto: Keras' own rule (off on a CPU and under tf.distribute)
    devices: list[str] | None = None  # e.g. ["/gpu:0", "/gpu:1"]; None = every visible GPU, else the CPU
    # Decoded images (uint8) held in memory at most; beyond it, images are read from their files
    # batch by batch. None: TRANSFERLAB_MEMORY_BUDGET_MB, else half the memory available at start.
    memory_budget_mb: float | None = None

    def resolved(self) -> "TrainConfig":
        """A copy with every default filled in, checked; raises ConfigError (a ValueError) on bad values."""
        c = TrainConfig(**asdict(self))
        if c.strategy not in STRATEGIES:
            raise ConfigError(N_("Unknown strategy '{strategy}': choose one of {choices}."),
                              strategy=c.strategy, choices=", ".join(STRATEGIES))
        if c.strategy == "scratch":
            c.base = "scratch"
        elif c.base not in BACKBONES:
            raise ConfigError(N_("Unknown base '{base}': choose one of {choices}."),
                              base=c.base, choices=", ".join(BACKBONES))
        c.epochs = DEFAULT_EPOCHS[c.strategy] if c.epochs is None else c.epochs
        if c.strategy == "fine-tune":
            c.fine_tune_epochs = DEFAULT_FINE_TUNE_EPOCHS if c.fine_tune_epochs is None else c.fine_tune_epochs
            c.unfreeze = BACKBONES[c.base].default_unfreeze if c.unfreeze is None else c.unfreeze
        else:
            c.fine_tune_epochs, c.unfreeze = 0, 0
        c.learning_rate = c.learning_rate or DEFAULT_LEARNING_RATE
        c.dropout = DEFAULT_DROPOUT[c.strategy] if c.dropout is None else c.dropout
        if c.augment and c.augment_config is None:
            c.augment_config = AugmentConfig.classic().to_dict()
        if c.augment and AugmentConfig.from_dict(c.augment_config).problem():
            raise ConfigError(AugmentConfig.from_dict(c.augment_config).problem())
        if c.augment and c.color_mode == "grayscale" and AugmentConfig.from_dict(c.augment_config).hue:
            raise ConfigError(N_("A hue shift needs colour images: set it to 0 to train on grayscale images."))
        for name, low in (("image_size", 16), ("batch_size", 1), ("epochs", 0), ("views", 1)):
            if int(getattr(c, name)) < low:
                raise ConfigError(N_("--{flag} must be at least {low}."), flag=name.replace("_", "-"), low=low)
        _check_choice(c.network, NETWORKS, N_("Unknown network '{value}': choose one of {choices}."))
        _check_choice(c.head, HEADS, N_("Unknown head '{value}': choose one of {choices}."))
        _check_choice(c.color_mode, COLOR_MODES, N_("Unknown colour mode '{value}': choose one of {choices}."))
        if c.conv_blocks not in CONV_BLOCKS_MIN_SIZE:
            raise ConfigError(N_("--conv-blocks must be between 1 and {most}."), most=max(CONV_BLOCKS_MIN_SIZE))
        if c.strategy == "scratch" and c.network == "convnet" and c.image_size < CONV_BLOCKS_MIN_SIZE[c.conv_blocks]:
            if c.conv_blocks == 4:
                raise ConfigError(N_("The scratch convnet needs images of at least {size} px (four conv + pool "
                                     "stages): choose a larger image size, or fewer conv blocks for small "
                                     "images."), size=SCRATCH_MIN_SIZE)
            raise ConfigError(N_("The scratch convnet with {blocks} conv + pool blocks needs images of at least "
                                 "{size} px."), blocks=c.conv_blocks, size=CONV_BLOCKS_MIN_SIZE[c.conv_blocks])
        if c.strategy != "scratch" and BACKBONES[c.base].size_problem(c.image_size):
            raise ConfigError(BACKBONES[c.base].size_problem(c.image_size))
        if c.strategy != "scratch" and c.color_mode != "rgb":
            raise ConfigError(N_("Pretrained bases take colour (RGB) images: choose the colour mode rgb, or train "
                                 "from scratch for grayscale images."))
        if c.resize not in RESIZE_MODES:
            raise ConfigError(N_("Unknown resize mode '{resize}': choose crop or stretch."), resize=c.resize)
        c.optimizer = c.optimizer.lower()
        c.fine_tune_optimizer = (c.fine_tune_optimizer or c.optimizer).lower()
        for name in (c.optimizer, c.fine_tune_optimizer):
            if name not in OPTIMIZERS:
                raise ConfigError(N_("Unknown optimizer '{optimizer}': choose {choices}."),
                                  optimizer=name, choices=", ".join(OPTIMIZERS))
        if not 0 <= c.dropout < 1:
            raise ConfigError(N_("Dropout must be between 0 and 1."))
        if c.learning_rate <= 0 or c.fine_tune_learning_rate <= 0:
            raise ConfigError(N_("Learning rates must be above 0."))
        if not 0 <= c.momentum < 1:
            raise ConfigError(N_("Momentum must be between 0 and 1."))
        if c.l2 < 0:
            raise ConfigError(N_("--l2 must be 0 or more."))
        if c.head_units < 1:
            raise ConfigError(N_("--head-units must be at least 1."))
        if c.per_class is not None and c.per_class < 1:
            raise ConfigError(N_("--per-class must be at least 1 (or left out for every image)."))
        if c.memory_budget_mb is not None and c.memory_budget_mb < 0:
            raise ConfigError(N_("--memory-budget-mb must be 0 or more."))
        pipeline.memory_budget(c.memory_budget_mb)  # a bad TRANSFERLAB_MEMORY_BUDGET_MB fails here
        return c


def _check_choice(value: str, choices: tuple, sentence: str) -> None:
    if value not in choices:
        raise ConfigError(sentence, value=value, choices=", ".join(choices))


DEFAULTS = TrainConfig(data="")  # every default setting, for the command line and the Train page


# ---------------------------------------------------------------- errors a user reads

class JobBusy(Explained, RuntimeError):
    """A second training job while one is running."""


class Stopped(Exception):
    """Raised inside the job when the user asked to stop outside of model.fit."""


# errno -> what happened to the runs folder and what to do about it ({detail}: the system's words)
_NO_ACCESS = N_("The runs folder cannot be written: give this server write access or choose another runs folder "
                "({detail}).")
_WRITE_FAILURES = {
    errno.ENOSPC: N_("The runs folder is full: free some space, then start the training again ({detail})."),
    errno.EDQUOT: N_("The runs folder is full (disk quota exceeded): free some space, then start the training "
                     "again ({detail})."),
    errno.EROFS: N_("The runs folder is read-only: make it writable or choose another runs folder ({detail})."),
    errno.ENOENT: N_("The runs folder was deleted: start the training again to create it anew ({detail})."),
    errno.EACCES: _NO_ACCESS,
    errno.EPERM: _NO_ACCESS,
}
_ALSO_FROM_READING = (errno.ENOENT, errno.EACCES, errno.EPERM)  # the user's images raise these too


def write_failure_sentence(e: BaseException, runs_dir: str | None = None) -> Message | None:
    """One sentence for a write to the runs folder that failed (disk full, read-only, folder deleted,
    no permission), or None when `e` is something else. Errors that reading the user's images can
    raise too count only for a path inside runs_dir (or an unknown path).
    """
    if isinstance(e, runs.RunWriteError) and e.errno in _WRITE_FAILURES:
        # the same sentence as any failed write, core.runs' own (where and why) as its detail
        return Message(_WRITE_FAILURES[e.errno], {"detail": e.message})
    if isinstance(e, runs.RunWriteError):
        return e.message
    if not isinstance(e, OSError) or e.errno not in _WRITE_FAILURES:
        return None
    if e.errno in _ALSO_FROM_READING and e.filename and runs_dir and not _inside(str(e.filename), runs_dir):
        return None
    detail = f"{e.strerror}: {e.filename}" if e.filename else (e.strerror or str(e))
    return Message(_WRITE_FAILURES[e.errno], {"detail": detail})


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return os.path.commonpath([path, folder]) == folder


def is_input_error(e: BaseException, runs_dir: str | None = None) -> bool:
    """The error was caused by the user's data or settings (the command line exits 2)."""
    if write_failure_sentence(e, runs_dir):
        return False
    return isinstance(e, (data_mod.DatasetError, WeightsUnavailable, ValueError, FileNotFoundError))


def readable_error(e: BaseException, runs_dir: str | None = None) -> Message:
    """One sentence a user can act on, for the errors a user can cause (str() for the English)."""
    sentence = write_failure_sentence(e, runs_dir)
    if sentence:
        return sentence
    if is_input_error(e):
        return as_message(message_of(e))
    if is_out_of_memory(e):
        tf = sys.modules.get("tensorflow")
        on_gpu = tf is not None and tf.config.list_physical_devices("GPU") and not isinstance(e, MemoryError)
        sentence = (N_("Out of GPU memory: try a smaller batch size or image size ({error}).") if on_gpu else
                    N_("Out of memory: try a smaller batch size or image size ({error})."))
        return Message(sentence, {"error": type(e).__name__})
    return Message(f"{type(e).__name__}: {e}")  # a failure of the program, not the user's: as it came


def is_out_of_memory(e: BaseException) -> bool:
    """TensorFlow's allocation failures: ResourceExhaustedError, or an OOM inside another error."""
    tf = sys.modules.get("tensorflow")  # not imported: the error cannot be TensorFlow's
    if isinstance(e, MemoryError) or (tf is not None and isinstance(e, tf.errors.ResourceExhaustedError)):
        return True
    text = str(e)
    return "OOM when allocating" in text or "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


# ---------------------------------------------------------------- the job

def train(config: TrainConfig, job: "Job") -> dict:
    """core.training.train, imported when the first job runs: it brings TensorFlow, which the pages
    that import this module must not pay for."""
    from core import training

    return training.train(config, job)


@dataclass(frozen=True)
class LogLine:
    """One line of a job's log: when, and the sentence (English in str(), translated by the UI)."""
    time: str  # HH:MM:SS
    message: Message

    def __str__(self) -> str:
        return f"[{self.time}] {self.message}"


class Job:
    """One training: its state, metric history and stop flag, shared with the UI threads.

    Every field is private and guarded by the job's lock; the properties below read it under the
    lock (lists as copies), and `snapshot()` reads everything at once."""

    def __init__(self, config: TrainConfig, echo=None):
        self.id = uuid.uuid4().hex[:8]
        self.started = time.time()
        self.thread: threading.Thread | None = None  # set by JobRegistry.start before anyone sees the job
        # Re-entrant: the CLI's signal handler calls request_stop() in the training thread itself,
        # possibly while that thread holds the lock.
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._echo = echo
        self._config = config
        self._state = "queued"  # queued, running, stopping, finished, stopped, failed
        self._phase, self._phase_progress, self._phase_started = "", 0.0, time.time()
        self._eta_seconds: float | None = None
        self._batches: list[dict] = []
        self._epochs: list[dict] = []
        self._logs: list[LogLine] = []
        self._error: Message | None = None
        self._input_error = False  # the error was caused by the user's data or settings
        self._run_dir: str | None = None
        self._result: dict | None = None
        self._finished: float | None = None

    def _read(self, name: str):
        with self._lock:
            value = getattr(self, name)
            return list(value) if isinstance(value, list) else value

    config = property(lambda self: self._read("_config"))
    state = property(lambda self: self._read("_state"))
    phase = property(lambda self: self._read("_phase"))
    batches = property(lambda self: self._read("_batches"))
    epochs = property(lambda self: self._read("_epochs"))
    logs = property(lambda self: self._read("_logs"))
    error_message = property(lambda self: self._read("_error"))  # the Message, for the dashboard

    @property
    def error(self) -> str | None:
        """The error in English (the command line, status.json), None when there is none."""
        message = self.error_message
        return None if message is None else str(message)

    input_error = property(lambda self: self._read("_input_error"))
    result = property(lambda self: self._read("_result"))
    finished = property(lambda self: self._read("_finished"))

    @property
    def run_dir(self) -> str | None:
        return self._read("_run_dir")

    @run_dir.setter
    def run_dir(self, path: str) -> None:  # by the training, once its run folder exists
        with self._lock:
            self._run_dir = path

    @property
    def active(self) -> bool:
        with self._lock:
            return self._state in ("queued", "running", "stopping")

    @property
    def stop_requested(self) -> bool:
        return self._stop.is_set()

    # -- called from the UI / CLI
    def request_stop(self) -> None:
        with self._lock:
            if self._state not in ("queued", "running"):
                return  # already stopping, or over
            self._state = "stopping"
        self._stop.set()
        self.log(N_("Stop requested: finishing the current batch."))

    def snapshot(self) -> dict:
        """A consistent copy of everything the UI shows."""
        with self._lock:
            return {
                "id": self.id, "state": self._state, "phase": self._phase,
                "phase_progress": self._phase_progress, "eta_seconds": self._eta_seconds,
                "batches": list(self._batches), "epochs": list(self._epochs), "logs": list(self._logs),
                "error": None if self._error is None else str(self._error), "error_message": self._error,
                "run_dir": self._run_dir, "result": self._result,
                "config": asdict(self._config), "started": self.started, "finished": self._finished,
            }

    # -- called from the training thread
    def log(self, msgid: str, **params) -> None:
        """Add a line: `msgid` marked with N_, its {placeholders} filled from params. The echo (the
        command line) gets it in English."""
        line = LogLine(time.strftime("%H:%M:%S"), Message(msgid, params))
        with self._lock:
            self._logs.append(line)
        if self._echo:
            self._echo(str(line))

    def set_phase(self, phase: str) -> None:
        """phase: an English name marked with N_ where it is set (the dashboard translates it)."""
        with self._lock:
            self._phase, self._phase_progress, self._eta_seconds = phase, 0.0, None
            self._phase_started = time.time()
        self.log(N_("Phase: {phase}"), phase=Message(phase))

    def set_progress(self, done: float, total: float) -> None:
        fraction = min(1.0, done / total) if total else 1.0
        with self._lock:
            elapsed = time.time() - self._phase_started
            self._phase_progress = fraction
            self._eta_seconds = elapsed * (1 - fraction) / fraction if fraction > 0 else None

    def add_batch(self, record: dict) -> None:
        with self._lock:
            self._batches.append(record)

    def add_epoch(self, record: dict) -> None:
        with self._lock:
            self._epochs.append(record)
        run_dir = self.run_dir
        if run_dir:
            runs.append_history(run_dir, record)
        scores = ", ".join(f"{k} {v:.4f}" for k, v in record.items()
                           if k in ("loss", "accuracy", "val_loss", "val_accuracy") and v is not None)
        self.log(N_("{phase} epoch {epoch} (partial): {scores}") if record.get("partial") else
                 N_("{phase} epoch {epoch}: {scores}"), phase=Message(record["phase"]), epoch=record["epoch"],
                 scores=scores)

    def check_stop(self) -> None:
        if self.stop_requested:
            raise Stopped()

    def run(self) -> dict | None:
        """Train synchronously in this thread (the CLI calls this; start() wraps it in a thread).

        Always ends in a final state (finished, stopped or failed), even when nothing can be
        written to the run folder: the next training must be able to start."""
        with self._lock:
            if self._state == "queued":
                self._state = "running"
        final, result = runs.FAILED, None
        try:
            config = self.config.resolved()
            with self._lock:
                self._config = config  # the defaults filled in, for the UI
            result = train(config, self)
            final = runs.STOPPED if self.stop_requested else runs.FINISHED
        except Stopped:  # stopped before the first epoch (scan, decode): nothing to keep, not an error
            final = runs.STOPPED
            self.log(N_("Stopped before training began: nothing to keep."))
            self._record_end(state=runs.STOPPED, finished=time.time())
        except Exception as e:
            runs_dir = self.config.runs_dir
            with self._lock:
                self._error = readable_error(e, runs_dir)
                self._input_error = is_input_error(e, runs_dir)
            self.log(N_("Error: {error}"), error=self.error_message)
            self._record_end(state=runs.FAILED, error=self.error, traceback=traceback.format_exc(limit=8))
        finally:
            with self._lock:
                self._state, self._result, self._finished = final, result, time.time()
        return result

    def _record_end(self, **status) -> None:
        """Write the final status to the run folder, if there is one and it can still be written."""
        run_dir = self.run_dir
        if not run_dir:
            return
        try:
            runs.write_status(run_dir, **status)
        except Exception as e:  # noqa: BLE001  the job must end whatever the disk says
            why = write_failure_sentence(e, self.config.runs_dir) or f"{type(e).__name__}: {e}"
            self.log(N_("The run folder could not record how this training ended. {why}"), why=why)


# ---------------------------------------------------------------- the registry

class JobRegistry:
    """Process-wide and thread-safe: at most one active training job at a time. Every read and
    write of the job table happens under the registry's lock."""

    def __init__(self):
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._latest: Job | None = None

    def start(self, config: TrainConfig) -> Job:
        config = config.resolved()  # bad settings fail here, in the caller's thread
        with self._lock:
            busy = self._active()
            if busy:
                raise JobBusy(N_("A training job is already running ({strategy}, {base}, started {time}). "
                                 "Wait for it to finish or stop it first."),
                              strategy=busy.config.strategy, base=busy.config.base,
                              time=time.strftime("%H:%M:%S", time.localtime(busy.started)))
            job = Job(config)
            # Forget all but the last few finished jobs: their history is in their run folders.
            for old in [j for j in self._jobs.values() if not j.active][:-KEEP_FINISHED_JOBS]:
                del self._jobs[old.id]
            self._jobs[job.id] = job
            self._latest = job
            job.thread = threading.Thread(target=job.run, name=f"train-{job.id}", daemon=True)
            job.thread.start()
        return job

    def _active(self) -> Job | None:
        return next((j for j in self._jobs.values() if j.active), None)

    def active(self) -> Job | None:
        with self._lock:
            return self._active()

    def latest(self) -> Job | None:
        with self._lock:
            return self._latest

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def active_run_dirs(self) -> list[str]:
        with self._lock:
            jobs = list(self._jobs.values())
        return [run_dir for j in jobs if j.active and (run_dir := j.run_dir)]


REGISTRY = JobRegistry()
