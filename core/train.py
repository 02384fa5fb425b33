"""The command line: python -m core.train --data DIR --strategy ... (see README / PRODUCT.md).

Prints progress, then as its last line one JSON object with the result.
Exit code 0 on success, 1 when training failed, 2 with a one-line error on bad input.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def parse_args(argv=None) -> argparse.Namespace:
    from core.training import STRATEGIES

    p = argparse.ArgumentParser(prog="python -m core.train", description="Train a Transfer Lab model.")
    p.add_argument("--data", required=True, help="dataset folder: DIR/{train,validation,test}/CLASS or DIR/CLASS")
    p.add_argument("--strategy", required=True, choices=STRATEGIES)
    p.add_argument("--base", default="mobilenet_v2", help="backbone (ignored by scratch)")
    p.add_argument("--image-size", type=int, default=160)
    p.add_argument("--resize", default="crop", choices=("crop", "stretch"),
                   help="crop: central square, aspect ratio kept (default); stretch: whole image squeezed")
    p.add_argument("--epochs", type=int, help="epochs (the head phase, for fine-tune)")
    p.add_argument("--fine-tune-epochs", type=int)
    p.add_argument("--unfreeze", type=int, help="top layers of the base to unfreeze (fine-tune)")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=False)
    p.add_argument("--augment-preset", default="classic", choices=("classic", "light"),
                   help="with --augment: classic = Deep Learning with Python §5.2 (rotation 40, shifts 0.2, "
                        "shear 0.2, zoom 0.2, flips); light = the Keras blog's (shear 0.2, zoom 0.2, flips)")
    p.add_argument("--views", type=int, default=4, help="augmented views cached per image")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--optimizer", default="adam", choices=("adam", "rmsprop", "sgd"))
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--fine-tune-learning-rate", type=float, default=1e-5)
    p.add_argument("--dropout", type=float)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.15, help="flat folders only")
    p.add_argument("--test-fraction", type=float, default=0.15, help="flat folders only")
    p.add_argument("--runs-dir", default=None)
    p.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed_float16 (default: on only with GPUs of compute capability 7.0 or later)")
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None,
                   help="XLA jit_compile (default: Keras' auto, which is off on a CPU and with several GPUs)")
    p.add_argument("--memory-budget-mb", type=float, default=None,
                   help="decoded images held in memory at most; beyond it they are read from the files "
                        "batch by batch (default: TRANSFERLAB_MEMORY_BUDGET_MB, else half the available memory)")
    return p.parse_args(argv)


@contextlib.contextmanager
def _native_stderr_silenced():
    """TensorFlow's C++ side prints start-up chatter to fd 2 whatever TF_CPP_MIN_LOG_LEVEL says;
    keep it out of the one-line error contract. Python errors still reach stderr afterwards."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def main(argv=None) -> int:
    args = parse_args(argv)
    with _native_stderr_silenced():
        import tensorflow  # noqa: F401  (imported here so its start-up chatter is silenced)
    from core import data
    from core.augment import AugmentConfig
    from core.training import Job, TrainConfig, configure_tensorflow

    augment = AugmentConfig.preset(args.augment_preset).to_dict() if args.augment else None
    config = TrainConfig(
        data=args.data, strategy=args.strategy, base=args.base, image_size=args.image_size,
        resize=args.resize, batch_size=args.batch_size, epochs=args.epochs, fine_tune_epochs=args.fine_tune_epochs,
        unfreeze=args.unfreeze, augment=args.augment, augment_config=augment, views=args.views, optimizer=args.optimizer,
        learning_rate=args.learning_rate, fine_tune_learning_rate=args.fine_tune_learning_rate,
        dropout=args.dropout, seed=args.seed, val_fraction=args.val_fraction,
        test_fraction=args.test_fraction, mixed_precision=args.mixed_precision, xla=args.xla,
        memory_budget_mb=args.memory_budget_mb,
        **({"runs_dir": args.runs_dir} if args.runs_dir else {}))
    try:
        config = config.resolved()
        data.scan(config.data, config.val_fraction, config.test_fraction, config.seed)
    except (ValueError, data.DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    with _native_stderr_silenced():
        configure_tensorflow()  # probing for GPUs logs CUDA chatter on machines without one
    job = Job(config, echo=lambda line: print(line, flush=True))
    signal.signal(signal.SIGINT, lambda *_: job.request_stop())
    signal.signal(signal.SIGTERM, lambda *_: job.request_stop())
    result = job.run()
    if job.error:
        print(f"error: {job.error}", file=sys.stderr)
        print(json.dumps({"run_dir": job.run_dir, "strategy": config.strategy, "base": config.base,
                          "error": job.error}))
        return 2 if job.input_error else 1
    # Stopped (Ctrl-C) before the first epoch: no result, still one JSON object as the last line.
    print(json.dumps(result or {"run_dir": job.run_dir, "strategy": config.strategy, "base": config.base,
                                "epochs_run": 0, "stopped": True}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
