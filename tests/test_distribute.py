"""The GPU path, checked on a CPU: MirroredStrategy over two logical CPU devices through the real
train(), mixed precision forced on, the automatic choices, and the out-of-memory message.

Logical devices must be configured before TensorFlow initialises its devices, so the training
under MirroredStrategy runs in a subprocess of its own (and leaves this process untouched).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT

pytestmark = pytest.mark.timeout(300)

TWO_CPUS = r"""
import json, sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from core.devices import pick_strategy
from core.jobs import Job, TrainConfig

strategy = pick_strategy(["/cpu:0", "/cpu:1"])
job = Job(TrainConfig(**json.loads(sys.argv[1])))
result = job.run()
print(json.dumps({"strategy": type(strategy).__name__, "replicas": strategy.num_replicas_in_sync,
                  "devices": list(strategy.extended.worker_devices), "result": result, "error": job.error,
                  "epochs": job.epochs, "batches": job.batches, "logs": [str(l) for l in job.logs]}))
"""


def train_on_two_cpus(config: dict) -> dict:
    p = subprocess.run([sys.executable, "-c", TWO_CPUS, json.dumps(config)], cwd=ROOT, capture_output=True,
                       text=True, timeout=240, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert p.returncode == 0, p.stderr[-3000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_scratch_trains_under_mirrored_strategy_on_two_logical_cpus(tmp_path):
    from core.sample import make_shapes

    data = make_shapes(str(tmp_path / "shapes"), per_class=10, size=48)
    out = train_on_two_cpus({"data": data, "strategy": "scratch", "image_size": 48, "epochs": 2, "batch_size": 4,
                             "val_fraction": 0.3, "runs_dir": str(tmp_path / "runs"), "weights": None,
                             "devices": ["/cpu:0", "/cpu:1"]})
    assert out["error"] is None, out["logs"]
    assert out["strategy"] == "MirroredStrategy" and out["replicas"] == 2
    assert [d.rsplit("/", 1)[-1] for d in out["devices"]] == ["device:CPU:0", "device:CPU:1"]
    result = out["result"]
    assert result["replicas"] == 2 and result["epochs_run"] == 2 and result["test_accuracy"] is not None
    run_dir = result["run_dir"]
    assert os.path.exists(os.path.join(run_dir, "model.keras"))
    config = json.load(open(os.path.join(run_dir, "config.json")))
    assert config["acceleration"]["replicas"] == 2 and config["acceleration"]["global_batch_size"] == 8
    assert config["batch_size"] == 4  # the user's per-replica batch is what the run records as its setting
    assert config["acceleration"]["mixed_precision"] is False and result["mixed_precision"] is False  # no GPU: off
    assert any("2 replicas (MirroredStrategy): batch 4 per replica, 8 in all" in line for line in out["logs"])
    # 15 training images in global batches of 8: two steps an epoch (four at batch 4).
    assert max(b["batch"] for b in out["batches"] if b["epoch"] == 1) == 2


@pytest.mark.slow
def test_fine_tune_under_mirrored_strategy_learns(tmp_path):
    """The transfer path (cached features, the head, then the unfrozen top layers on cached cut
    tensors) under MirroredStrategy: every model it compiles is created in the strategy's scope,
    and the head's training loss falls. MobileNet 0.25 with its offline ImageNet weights."""
    from core.models import keras_cache_dir
    from core.sample import make_shapes

    if not os.path.exists(os.path.join(keras_cache_dir(), "mobilenet_2_5_128_tf_no_top.h5")):
        pytest.skip("the offline MobileNet 0.25 weights (128 px) are not in KERAS_HOME")
    data = make_shapes(str(tmp_path / "shapes"), per_class=8, size=128)
    out = train_on_two_cpus({"data": data, "strategy": "fine-tune", "base": "mobilenet_025", "image_size": 128,
                             "epochs": 4, "fine_tune_epochs": 1, "unfreeze": 4, "batch_size": 4, "views": 1,
                             "learning_rate": 0.01, "runs_dir": str(tmp_path / "runs"),
                             "devices": ["/cpu:0", "/cpu:1"]})
    assert out["error"] is None, out["logs"]
    assert out["result"]["replicas"] == 2 and out["result"]["epochs_run"] == 5
    head = [e["loss"] for e in out["epochs"] if e["phase"] == "head"]
    assert len(head) == 4 and head[-1] < 0.5 * head[0], head
    assert [e["phase"] for e in out["epochs"]][-1] == "fine-tune"
    assert os.path.exists(os.path.join(out["result"]["run_dir"], "model.keras"))


# ---------------------------------------------------------------- in this process

def test_one_cpu_gets_the_default_strategy_and_unknown_devices_a_sentence():
    import tensorflow as tf

    from core.devices import pick_strategy

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    strategy = pick_strategy()
    assert strategy is tf.distribute.get_strategy() and strategy.num_replicas_in_sync == 1
    assert type(pick_strategy(["/cpu:0"])).__name__ == "OneDeviceStrategy"
    with pytest.raises(ValueError, match="Unknown device '/gpu:7': this machine has /device:CPU:0"):
        pick_strategy(["/gpu:7"])


def test_automatic_choices_follow_the_hardware():
    from core.devices import describe_devices, mixed_precision_helps

    a100 = {"device": "/physical_device:GPU:0", "name": "NVIDIA A100", "compute_capability": (8, 0)}
    p100 = {"device": "/physical_device:GPU:1", "name": "Tesla P100", "compute_capability": (6, 0)}
    assert not mixed_precision_helps([])  # a CPU: never
    assert mixed_precision_helps([a100])
    assert not mixed_precision_helps([p100]) and not mixed_precision_helps([a100, p100])
    assert describe_devices([]).startswith("CPU (")
    assert describe_devices([a100]) == "GPU (NVIDIA A100, compute 8.0)"
    assert describe_devices([a100, dict(a100, device="/physical_device:GPU:1")]) == \
        "2 GPUs (2x NVIDIA A100, compute 8.0; MirroredStrategy)"


def test_out_of_memory_reads_as_a_suggestion():
    import tensorflow as tf

    from core.jobs import readable_error

    oom = tf.errors.ResourceExhaustedError(None, None, "OOM when allocating tensor with shape[64,160,160,32]")
    message = str(readable_error(oom))
    assert message.startswith("Out of ") and "smaller batch size or image size" in message
    wrapped = tf.errors.InternalError(None, None, "Failed to allocate: RESOURCE_EXHAUSTED: out of memory")
    assert "smaller batch size" in str(readable_error(wrapped))
    assert str(readable_error(RuntimeError("something else"))) == "RuntimeError: something else"


def test_mixed_precision_forced_on_keeps_the_output_in_float32(shapes, tmp_path):
    """On a CPU mixed precision is off by default (it only pays on tensor cores); forced on, the
    engine trains in float16 with a float32 softmax, and the saved model still predicts."""
    import keras
    import numpy as np

    from core import runs
    from core.jobs import Job
    from tiny_runs import tiny_config

    job = Job(tiny_config(shapes, tmp_path / "runs", epochs=1, mixed_precision=True))
    result = job.run()
    assert job.error is None and result["mixed_precision"] is True
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after training
    model = runs.load_model(result["run_dir"])
    assert model.get_layer("conv1").dtype_policy.name == "mixed_float16"
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    probs = model.predict(np.zeros((2, 48, 48, 3), np.float32), verbose=0)
    assert probs.dtype == np.float32 and np.allclose(probs.sum(1), 1, atol=1e-5)


def test_global_batch_scales_with_replicas_and_fits_small_splits():
    from core.devices import global_batch

    assert global_batch(32, 1, 5) == 32  # one device: as asked, a small split is one short batch
    assert global_batch(32, 4, 1000) == 128
    assert global_batch(4, 2, 3) == 2  # 3 validation images on 2 replicas: batches of 2, then 1
    assert global_batch(8, 4, 30) == 28
    with pytest.raises(ValueError, match="needs at least 4 training and 4 validation images"):
        global_batch(8, 4, 3)
