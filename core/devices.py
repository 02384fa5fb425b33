"""Where training runs: TensorFlow's threads, GPUs, the distribution strategy, mixed precision.

`configure()` sets what TensorFlow reads when it starts (its log level, its thread pools): the
entry points (the command lines, app.py) call it before anything imports TensorFlow. Nothing here
imports TensorFlow at module level, so calling it is cheap and has no side effect on import.

One GPU: the default strategy (Keras places everything on it). Several GPUs: MirroredStrategy,
one replica per GPU, the batch size scaled by the number of replicas. Mixed precision
(mixed_float16, the output layer kept in float32) on by default only where tensor cores pay
for it; XLA left to Keras' "auto" (off on a CPU, where it measured slower, and under
tf.distribute). See docs/SCALING.md.

Several trainings at once (TRANSFERLAB_MAX_TRAININGS workers, core.jobs): each GPU is split into
as many logical devices as trainings share it, each with a memory cap, and each worker trains on
its own one (plan_gpu_sharing), so that an out-of-memory fails only the job that ran out.
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading

from core.messages import ConfigError, Message, N_

THREADS_ENV = "TRANSFERLAB_TF_THREADS"
MAX_TRAININGS_ENV = "TRANSFERLAB_MAX_TRAININGS"
TRAININGS_PER_GPU = 2  # the default: two trainings share a GPU, one trains on a CPU
GPU_MEMORY_RESERVE = 0.1  # of each GPU's memory, left to CUDA's own context and the display
_configured = False
_tensorflow_started = False


def configure() -> None:
    """TensorFlow's C++ log level and thread pools, through the variables it reads when its runtime
    starts (its first op). Call before TensorFlow is imported; later calls do nothing."""
    global _configured
    if _configured:
        return
    _configured = True
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    limit_threads()


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
        raise ConfigError(N_("{setting} must be a number of threads or 'auto', not '{value}'."),
                          setting=THREADS_ENV, value=value) from None


def limit_threads() -> int | None:
    """Apply tf_threads(), so that a web server training in a thread keeps a core for its pages."""
    try:
        n = tf_threads()
    except ValueError as e:  # a typo in the server's settings must not stop it: say so, use the default
        print(f"Transfer Lab: {e} Using TensorFlow's default.", file=sys.stderr)
        return None
    if n is not None:
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(n)
    return n


@contextlib.contextmanager
def native_stderr_silenced():
    """TensorFlow's C++ side prints start-up chatter to fd 2 whatever TF_CPP_MIN_LOG_LEVEL says;
    keep it out of the command lines' one-line error contract. Python errors still reach stderr
    afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


# ---------------------------------------------------------------- several trainings at once

def visible_gpu_count() -> int:
    """GPUs this process may use, without importing TensorFlow (the pages must not pay for it):
    the NVIDIA driver's list, narrowed by CUDA_VISIBLE_DEVICES."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    try:
        installed = len(os.listdir("/proc/driver/nvidia/gpus"))
    except OSError:
        installed = 0
    if visible is None:
        return installed
    chosen = [d for d in visible.split(",") if d.strip()]
    if any(d.strip().startswith("-") for d in chosen):  # "-1": no GPU
        return 0
    return min(len(chosen), installed)


def max_trainings(gpus: int | None = None) -> int:
    """How many trainings run at once (the rest wait in the queue): TRANSFERLAB_MAX_TRAININGS, else
    one on a CPU and TRAININGS_PER_GPU per GPU. The one place that reads the variable; a value that
    is not a whole number of at least 1 is reported on stderr and the default used."""
    gpus = visible_gpu_count() if gpus is None else gpus
    default = TRAININGS_PER_GPU * gpus if gpus else 1
    value = os.environ.get(MAX_TRAININGS_ENV, "").strip()
    if not value:
        return default
    try:
        n = int(value)
        if n >= 1:
            return n
    except ValueError:
        pass
    print(f"Transfer Lab: {MAX_TRAININGS_ENV} must be a whole number of at least 1, not '{value}'. "
          f"Using {default}.", file=sys.stderr)
    return default


def plan_gpu_sharing(memory_mb: list[int], workers: int) -> dict:
    """How `workers` trainings share the GPUs whose memory (MB) is given: {"split": logical devices
    per GPU, "memory_limit_mb": the cap of each logical device per GPU (None: no split, memory
    growth only), "devices": the logical device of each worker, "/gpu:N"}. Workers go round-robin
    over the GPUs; TensorFlow numbers the logical devices GPU after GPU."""
    if not memory_mb or workers <= 1:
        return {"split": [1] * len(memory_mb), "memory_limit_mb": [None] * len(memory_mb), "devices": []}
    gpus = len(memory_mb)
    split = [len(range(g, workers, gpus)) or 1 for g in range(gpus)]
    limits = [int(mb * (1 - GPU_MEMORY_RESERVE) // n) if n > 1 else None for mb, n in zip(memory_mb, split)]
    first = [sum(split[:g]) for g in range(gpus)]  # the number of each GPU's first logical device
    devices = [f"/gpu:{first[w % gpus] + w // gpus}" for w in range(workers)]
    return {"split": split, "memory_limit_mb": limits, "devices": devices}


def gpu_memory_mb() -> list[int]:
    """The total memory of each visible GPU in MB, from nvidia-smi ([] when it cannot tell)."""
    import subprocess

    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        totals = [int(float(line)) for line in out.split() if line.strip()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        wanted = [int(d) for d in visible.split(",") if d.strip().isdigit()]
        totals = [totals[i] for i in wanted if i < len(totals)]
    return totals


_sharing: dict | None = None  # plan_gpu_sharing's plan, once TensorFlow has started
_start_lock = threading.Lock()  # two trainings may start TensorFlow at the same moment


def worker_devices(worker: int | None) -> list[str] | None:
    """[the logical device] a training worker trains on when trainings share GPUs (start_tensorflow
    made them), None when it trains as a lone training does (every GPU, or the CPU)."""
    devices = (_sharing or {}).get("devices") or []
    return [devices[worker % len(devices)]] if devices and worker is not None else None


def start_tensorflow(workers: int = 1) -> str:
    """Import TensorFlow and, once, set up its GPUs: memory growth on; with several trainings per
    GPU, each GPU split into capped logical devices (plan_gpu_sharing). A short description of the
    training device."""
    import tensorflow as tf

    with _start_lock:
        gpus = tf.config.list_physical_devices("GPU")
        if not _tensorflow_started:
            _set_up_gpus(tf, gpus, workers)
    return describe_devices(gpu_details() if gpus else [])


def _set_up_gpus(tf, gpus: list, workers: int) -> None:
    global _tensorflow_started, _sharing
    _tensorflow_started = True
    tf.get_logger().setLevel("ERROR")
    memory = gpu_memory_mb() if gpus and workers > 1 else []
    plan = plan_gpu_sharing(memory, workers) if len(memory) == len(gpus) else plan_gpu_sharing([], 1)
    _sharing = plan if plan["devices"] else None
    if _sharing:
        # Growth within each cap: TensorFlow's set_memory_growth refuses a split GPU, its
        # allocator still reads this variable (read when the GPUs initialise, at the first op).
        os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
    for g, gpu in enumerate(gpus):
        try:
            if _sharing and plan["memory_limit_mb"][g]:
                tf.config.set_logical_device_configuration(
                    gpu, [tf.config.LogicalDeviceConfiguration(memory_limit=plan["memory_limit_mb"][g])]
                    * plan["split"][g])
            else:
                tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            _sharing = None  # already initialised: the jobs share the GPUs as they are


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


def device_message(gpus: list[dict]) -> Message:
    """Where training runs, as a sentence the dashboard translates: 'CPU (2 cores)', 'GPU (NVIDIA H100,
    compute 9.0)', '2 GPUs (2x NVIDIA A100, compute 8.0; MirroredStrategy)'."""
    if not gpus:
        return Message(N_("CPU ({cores} cores)"), {"cores": os.cpu_count()})
    names = sorted({g["name"] for g in gpus})
    cc = sorted({".".join(map(str, g["compute_capability"])) for g in gpus if g["compute_capability"]})
    what = ", ".join(names) + (f", compute {'/'.join(cc)}" if cc else "")
    if len(gpus) == 1:
        return Message(N_("GPU ({what})"), {"what": what})
    return Message(N_("{n} GPUs ({n}x {what}; MirroredStrategy)"), {"n": len(gpus), "what": what})


def describe_devices(gpus: list[dict]) -> str:
    """device_message in English (run logs, config.json, the command line)."""
    return str(device_message(gpus))


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
            raise ConfigError(N_("No device given: name at least one, e.g. /gpu:0."))
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
    raise ConfigError(N_("Unknown device '{device}': this machine has {devices}."),
                      device=name, devices=", ".join(known))


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
        raise ConfigError(N_("Training on {replicas} replicas needs at least {replicas} training and {replicas} "
                             "validation images (the smallest split has {smallest})."),
                          replicas=replicas, smallest=smallest_split)
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
