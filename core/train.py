"""The command line: python -m core.train --data DIR --strategy ... (see README / PRODUCT.md), or
--recipe NAME --data DIR (a published experiment's settings, core.recipes), or --list-recipes.

Prints progress, then as its last line one JSON object with the result.
Exit code 0 on success, 1 with a one-line error when training failed (a full or read-only runs
folder included), 2 with a one-line error on bad input.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
from dataclasses import fields, replace

from core import devices
from core.augment import FILL_MODES
from core.jobs import (COLOR_MODES, DEFAULTS, HEADS, NETWORKS, OPTIMIZERS, RESIZE_MODES, STRATEGIES, Job,
                       TrainConfig)


def build_parser() -> argparse.ArgumentParser:
    d = DEFAULTS
    p = argparse.ArgumentParser(prog="python -m core.train", description="Train a Transfer Lab model.")
    p.add_argument("--data", help="dataset folder: DIR/{train,validation,test}/CLASS or DIR/CLASS")
    p.add_argument("--recipe", help="start from a published experiment's settings (see --list-recipes); "
                                    "other flags change them and the run records what was changed")
    p.add_argument("--list-recipes", action="store_true", help="print every recipe with its source and "
                                                               "published figure, and exit")
    p.add_argument("--strategy", choices=STRATEGIES, help="required unless --recipe gives it")
    p.add_argument("--base", default=d.base, help="backbone (ignored by scratch)")
    p.add_argument("--image-size", type=int, default=d.image_size,
                   help="any size the base accepts (the scratch convnet: 48 px with four conv blocks)")
    p.add_argument("--resize", default=d.resize, choices=RESIZE_MODES,
                   help="crop: central square, aspect ratio kept (default); stretch: whole image squeezed")
    p.add_argument("--color-mode", default=d.color_mode, choices=COLOR_MODES,
                   help="grayscale: one channel, for scratch training (pretrained bases take rgb)")
    p.add_argument("--per-class", type=int, help="train on N images per class (a seeded subset of the training split)")
    p.add_argument("--epochs", type=int, help="epochs (the head phase, for fine-tune)")
    p.add_argument("--fine-tune-epochs", type=int)
    p.add_argument("--unfreeze", type=int, help="top layers of the base to unfreeze (fine-tune)")
    p.add_argument("--end-to-end", action=argparse.BooleanOptionalAction, default=d.end_to_end,
                   help="transfer: the frozen base inside the model on every batch, augmentation every batch "
                        "(as the book and the TensorFlow tutorial; slow), instead of features computed once")
    p.add_argument("--network", default=d.network, choices=NETWORKS, help="scratch: the small convnet or a "
                                                                           "dense network")
    p.add_argument("--conv-blocks", type=int, default=d.conv_blocks,
                   help="scratch convnet: conv + pool blocks, 1-4 (3 for 28 px images)")
    p.add_argument("--batch-norm", action=argparse.BooleanOptionalAction, default=d.batch_norm,
                   help="scratch convnet: BatchNormalization after each conv")
    p.add_argument("--head", default=d.head, choices=HEADS,
                   help="transfer head: pooling (global average pooling) or flatten_dense (Flatten, Dense, Dropout)")
    p.add_argument("--head-units", type=int, default=d.head_units, help="the Dense layer of the flatten_dense head")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=d.augment)
    p.add_argument("--augment-preset", default="classic", choices=("classic", "light"),
                   help="with --augment: classic = Deep Learning with Python §5.2 (rotation 40, shifts 0.2, "
                        "shear 0.2, zoom 0.2, flips); light = the Keras blog's (shear 0.2, zoom 0.2, flips)")
    p.add_argument("--fill-mode", choices=FILL_MODES, help="with --augment: points moved in from outside the "
                                                           "image (default: the preset's, nearest)")
    p.add_argument("--channel-shift", type=float, help="with --augment: shift each channel by up to this much "
                                                       "(0-255)")
    p.add_argument("--views", type=int, default=d.views, help="augmented views cached per image")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--optimizer", default=d.optimizer, choices=OPTIMIZERS,
                   help="the whole training, or fine-tune's head phase")
    p.add_argument("--learning-rate", type=float)
    p.add_argument("--fine-tune-optimizer", choices=OPTIMIZERS, help="fine-tune's second phase (default: --optimizer)")
    p.add_argument("--fine-tune-learning-rate", type=float, default=d.fine_tune_learning_rate)
    p.add_argument("--momentum", type=float, default=d.momentum, help="sgd's momentum")
    p.add_argument("--nesterov", action=argparse.BooleanOptionalAction, default=d.nesterov, help="sgd: Nesterov momentum")
    p.add_argument("--dropout", type=float)
    p.add_argument("--l2", type=float, default=d.l2, help="L2 weight decay of the layers trained from scratch")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--val-fraction", type=float, default=d.val_fraction, help="flat folders only")
    p.add_argument("--test-fraction", type=float, default=d.test_fraction, help="flat folders only")
    p.add_argument("--runs-dir", default=None)
    p.add_argument("--mixed-precision", action=argparse.BooleanOptionalAction, default=None,
                   help="mixed_float16 (default: on only with GPUs of compute capability 7.0 or later)")
    p.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None,
                   help="XLA jit_compile (default: Keras' auto, which is off on a CPU and with several GPUs)")
    p.add_argument("--memory-budget-mb", type=float, default=None,
                   help="decoded images held in memory at most; beyond it they are read from the files "
                        "batch by batch (default: TRANSFERLAB_MEMORY_BUDGET_MB, else half the available memory)")
    return p


def parse_args(argv=None) -> argparse.Namespace:
    """The flags, and in `given` the names of those on the command line (a recipe's values are
    changed only by those)."""
    p = build_parser()
    args = p.parse_args(argv)
    if not args.list_recipes:
        if not args.data:
            p.error("the following arguments are required: --data")
        if not args.strategy and not args.recipe:
            p.error("the following arguments are required: --strategy (or --recipe)")
    quiet = build_parser()
    for action in quiet._actions:
        action.default = argparse.SUPPRESS
    args.given = set(vars(quiet.parse_args(argv)))
    return args


def _augment_config(args: argparse.Namespace, start: dict | None) -> dict | None:
    """The augmentation of the flags: the preset's (or `start`, a recipe's), with --fill-mode and
    --channel-shift applied."""
    from core.augment import AugmentConfig

    given = getattr(args, "given", set(vars(args)))
    config = AugmentConfig.from_dict(start) if start and "augment_preset" not in given else \
        AugmentConfig.preset(args.augment_preset)
    changes = {k: getattr(args, k) for k in ("fill_mode", "channel_shift") if getattr(args, k, None) is not None}
    return replace(config, **changes).to_dict()


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of the parsed flags (each flag is named after its field). With --recipe, the
    recipe's settings changed by the flags given, and recorded as changes."""
    given = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    if given["runs_dir"] is None:
        del given["runs_dir"]  # the config's default: TRANSFERLAB_RUNS_DIR, else runs/
    if getattr(args, "recipe", None):
        from core import recipes

        recipe = recipes.get(args.recipe)
        on_line = getattr(args, "given", set())
        changes = {k: v for k, v in given.items() if k in on_line or k == "data"}
        augment_flags = on_line & {"augment_preset", "fill_mode", "channel_shift"}
        if augment_flags:
            changes["augment_config"] = _augment_config(args, recipe.overrides.get("augment_config"))
        return recipe.config(**changes)
    augment = _augment_config(args, None) if args.augment else None
    return TrainConfig(**given, augment_config=augment)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list_recipes:
        from core import recipes

        print(recipes.listing())
        return 0
    devices.configure()
    with devices.native_stderr_silenced():
        import tensorflow  # noqa: F401  (imported here so its start-up chatter is silenced)
    from core import data

    try:
        config = config_from_args(args).resolved()
        data.scan(config.data, config.val_fraction, config.test_fraction, config.seed)
    except (ValueError, data.DatasetError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    with devices.native_stderr_silenced():
        devices.start_tensorflow()  # probing for GPUs logs CUDA chatter on machines without one
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
