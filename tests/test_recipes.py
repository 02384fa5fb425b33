"""Recipes (core.recipes) and the settings they need: heads, per-phase optimizers, L2, N images per
class, grayscale at native size, end to end training, the command line's --recipe / --list-recipes."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core import data, features, recipes, runs, run_schema
from core import train as train_cli
from core.jobs import Job, TrainConfig
from tiny_runs import tiny_config

# What the references published, written out again here from the book, the blog and the tutorial
# (not read from core.recipes), so that a recipe changed by mistake fails field by field.
BOOK_AUGMENTATION = {"rotation": 40, "width_shift": 0.2, "height_shift": 0.2, "shear": 0.2, "zoom": 0.2,
                     "horizontal_flip": True, "fill_mode": "nearest"}
BLOG_AUGMENTATION = {"rotation": 0, "width_shift": 0, "height_shift": 0, "shear": 0.2, "zoom": 0.2,
                     "horizontal_flip": True}
BOOK_VGG16 = {"base": "vgg16", "image_size": 150, "resize": "stretch", "head": "flatten_dense", "head_units": 256,
              "optimizer": "rmsprop", "batch_size": 20}
PUBLISHED = {
    "dlwp-5.2-scratch": ((0.71,), {"strategy": "scratch", "network": "convnet", "conv_blocks": 4, "image_size": 150,
                                   "optimizer": "rmsprop", "learning_rate": 1e-4, "batch_size": 20, "epochs": 30,
                                   "augment": False, "dropout": 0.0}),
    "dlwp-5.2-augment": ((0.82,), {"strategy": "scratch", "network": "convnet", "image_size": 150,
                                   "optimizer": "rmsprop", "learning_rate": 1e-4, "batch_size": 32, "epochs": 100,
                                   "augment": True, "dropout": 0.5, "augment_config": BOOK_AUGMENTATION}),
    "dlwp-5.3-features": ((0.90,), {**BOOK_VGG16, "strategy": "feature-extraction", "end_to_end": False,
                                    "learning_rate": 2e-5, "epochs": 30, "augment": False, "dropout": 0.5}),
    "dlwp-5.3-frozen-augment": ((0.96,), {**BOOK_VGG16, "strategy": "feature-extraction", "end_to_end": True,
                                          "learning_rate": 2e-5, "epochs": 30, "augment": True, "dropout": 0.0,
                                          "augment_config": BOOK_AUGMENTATION}),
    "dlwp-5.3-fine-tune": ((0.96, 0.97), {**BOOK_VGG16, "strategy": "fine-tune", "end_to_end": True,
                                          "learning_rate": 2e-5, "epochs": 30, "fine_tune_optimizer": "rmsprop",
                                          "fine_tune_learning_rate": 1e-5, "fine_tune_epochs": 100, "unfreeze": 4,
                                          "augment": True, "dropout": 0.0, "augment_config": BOOK_AUGMENTATION}),
    "keras-blog-1-scratch": ((0.80,), {"strategy": "scratch", "image_size": 150, "optimizer": "rmsprop",
                                       "learning_rate": 1e-3, "batch_size": 16, "epochs": 50, "augment": True,
                                       "dropout": 0.5, "augment_config": BLOG_AUGMENTATION}),
    "keras-blog-2-bottleneck": ((0.90,), {**BOOK_VGG16, "strategy": "feature-extraction", "end_to_end": False,
                                          "learning_rate": 1e-3, "batch_size": 16, "epochs": 50, "augment": False,
                                          "dropout": 0.5}),
    "keras-blog-3-fine-tune": ((0.90, 0.94), {**BOOK_VGG16, "strategy": "fine-tune", "end_to_end": True,
                                              "batch_size": 16, "fine_tune_optimizer": "sgd",
                                              "fine_tune_learning_rate": 1e-4, "momentum": 0.9, "nesterov": False,
                                              "fine_tune_epochs": 50, "unfreeze": 4, "augment": True,
                                              "augment_config": BLOG_AUGMENTATION}),
    "tf-tutorial": ((0.94, 0.98), {"strategy": "fine-tune", "end_to_end": True, "base": "mobilenet_v2",
                                   "image_size": 160, "resize": "stretch", "head": "pooling", "dropout": 0.2,
                                   "optimizer": "adam", "learning_rate": 1e-4, "batch_size": 32, "epochs": 10,
                                   "fine_tune_optimizer": "rmsprop", "fine_tune_learning_rate": 1e-5,
                                   "fine_tune_epochs": 10, "unfreeze": 54, "augment": True,
                                   "augment_config": {"rotation": 72, "horizontal_flip": True, "shear": 0,
                                                      "zoom": 0, "fill_mode": "reflect"}}),
    "ours-fast": ((0.983,), {"strategy": "feature-extraction", "end_to_end": False, "base": "mobilenet_v2",
                             "image_size": 160, "resize": "crop", "head": "pooling", "optimizer": "adam",
                             "learning_rate": 1e-3, "epochs": 30, "augment": False}),
}


def test_every_recipe_is_checked_here():
    assert set(PUBLISHED) == set(recipes.RECIPES)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_recipe_config_matches_the_published_settings(name):
    figures, settings = PUBLISHED[name]
    recipe = recipes.get(name)
    config = recipe.config("/data").resolved()
    for key, expected in settings.items():
        value = getattr(config, key)
        if isinstance(expected, dict):  # the augmentation: the fields named
            assert {k: value[k] for k in expected} == expected, (name, key)
        else:
            assert value == expected, (name, key, value)
    assert tuple(p.accuracy for p in recipe.published) == figures
    assert config.recipe == name and config.recipe_version == recipe.version and config.recipe_changes == []
    assert recipe.source and recipe.url and recipe.published_on in ("validation", "test")


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_each_recipe_builds_its_model(name):
    """Without ImageNet weights (VGG16's are not on this machine): the structure the recipe trains."""
    from core import models, training

    config = recipes.get(name).config("/data", weights=None).resolved()
    model = training.build_model(config, 2)
    size = config.image_size
    assert tuple(model.input.shape) == (None, size, size, 3) and model.output.shape[-1] == 2
    names = [layer.name for layer in model.layers]
    if config.head == "flatten_dense" and config.strategy != "scratch":
        assert names[-4:] == ["head_flatten", "head_dense", "head_dropout", "predictions"]
        assert model.get_layer("head_dense").units == 256
        assert model.get_layer("head_dropout").rate == config.dropout
    if config.strategy == "fine-tune":
        models.unfreeze_top(model, config.unfreeze)
        trained = [layer.name for layer in models.base_layers(model) if layer.trainable and layer.weights]
        if config.base == "vgg16":
            assert trained == ["block5_conv1", "block5_conv2", "block5_conv3"]  # the book's block5
        else:  # MobileNetV2's layers[100:] (its layers[0] is the input layer, not in base_layers)
            base = models.base_layers(model)
            assert base[99].name == "block_11_expand_relu" and base[99].trainable and not base[98].trainable
    if config.strategy == "scratch":
        assert [n for n in names if n.startswith("conv")] == ["conv1", "conv2", "conv3", "conv4"]


def test_list_recipes_prints_every_recipe_with_its_source_and_published_figure(capsys):
    assert train_cli.main(["--list-recipes"]) == 0
    out = capsys.readouterr().out
    for recipe in recipes.RECIPES.values():
        assert recipe.name in out and recipe.source in out and recipe.published_text() in out
    assert "96 / 97 %" in out and "94 / 98 %" in out and "71 %" in out and "98.3 %" in out


def test_a_recipe_without_its_weights_offline_says_so(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # an empty Keras cache
    problem = recipes.get("dlwp-5.3-features").weights_problem()
    assert problem and "VGG16" in str(problem) and "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in str(problem)
    assert recipes.get("dlwp-5.2-scratch").weights_problem() is None  # nothing to download


def test_flags_change_a_recipe_and_are_recorded_as_changes():
    args = train_cli.parse_args(["--recipe", "dlwp-5.3-fine-tune", "--data", "/d", "--fine-tune-epochs", "3",
                                 "--fine-tune-optimizer", "sgd", "--runs-dir", "/r", "--fill-mode", "reflect"])
    config = train_cli.config_from_args(args)
    assert config.recipe == "dlwp-5.3-fine-tune" and config.recipe_version == 1
    assert config.recipe_changes == ["augment_config", "fine_tune_epochs", "fine_tune_optimizer"]  # not runs_dir
    assert config.fine_tune_epochs == 3 and config.learning_rate == 2e-5 and config.base == "vgg16"
    assert config.augment_config["fill_mode"] == "reflect" and config.augment_config["rotation"] == 40
    # a flag given with the recipe's own value is no change
    same = train_cli.config_from_args(train_cli.parse_args(["--recipe", "dlwp-5.2-scratch", "--data", "/d",
                                                            "--batch-size", "20"]))
    assert same.recipe_changes == []
    with pytest.raises(ValueError, match="Unknown recipe 'dlwp'"):
        train_cli.config_from_args(train_cli.parse_args(["--recipe", "dlwp", "--data", "/d"]))


def test_a_recipe_run_records_the_recipe_and_what_was_changed(shapes, runs_dir, capsys):
    code = train_cli.main(["--recipe", "dlwp-5.2-scratch", "--data", shapes, "--image-size", "48", "--epochs", "1",
                           "--batch-size", "8", "--runs-dir", runs_dir])
    assert code == 0, capsys.readouterr().err
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    config = runs.read_run(result["run_dir"]).config
    assert (config["recipe"], config["recipe_version"]) == ("dlwp-5.2-scratch", 1)
    assert config["recipe_changes"] == ["batch_size", "epochs", "image_size"]
    assert config["optimizer"] == "rmsprop" and config["learning_rate"] == 1e-4  # the rest is the recipe's
    # runs from before recipes have none of these fields and still load; a damaged one says what is wrong
    assert run_schema.config_problem({"classes": ["a", "b"], "image_size": 48}) is None
    assert "recipe_changes" in str(run_schema.config_problem({"classes": ["a"], "image_size": 48,
                                                               "recipe_changes": "epochs"}))


def test_the_flatten_dense_head_has_its_layers():
    from core import models

    model = models.build_transfer("mobilenet_025", 32, 3, 0.3, None, head="flatten_dense", head_units=7)
    head = model.layers[-4:]
    assert [l.name for l in head] == ["head_flatten", "head_dense", "head_dropout", "predictions"]
    assert head[1].units == 7 and head[1].activation.__name__ == "relu" and head[2].rate == 0.3
    assert models.feature_model(model).output.shape[-1] == int(np.prod(model.get_layer("head_flatten").input.shape[1:]))
    pooled = models.build_transfer("mobilenet_025", 32, 3, 0.3, None)  # the default: as before
    assert [l.name for l in pooled.layers[-3:]] == ["head_pool", "head_dropout", "predictions"]


def test_l2_weight_decay_is_a_regularization_loss():
    from core import models

    plain = models.build_scratch(48, 2)
    assert not plain.losses
    decayed = models.build_scratch(48, 2, l2=0.01)
    kernels = [l.kernel for l in decayed.layers if hasattr(l, "kernel")]
    assert len(decayed.losses) == len(kernels) == 6  # four convs, Dense 512, the output
    expected = sum(0.01 * float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert float(sum(float(x) for x in decayed.losses)) == pytest.approx(expected, rel=1e-4)
    # a transfer model: the head's layers only, never the pretrained base's
    transfer = models.build_transfer("mobilenet_025", 32, 2, 0.2, None, head="flatten_dense", l2=0.01)
    assert len(transfer.losses) == 2


def test_batch_norm_and_fewer_conv_blocks_in_the_small_convnet():
    from core import models

    model = models.build_scratch(28, 2, channels=1, conv_blocks=3, batch_norm=True)
    names = [l.name for l in model.layers]
    assert [n for n in names if n.startswith(("conv", "bn", "pool"))] == [
        "conv1", "bn1", "pool1", "conv2", "bn2", "pool2", "conv3", "bn3", "pool3"]
    with pytest.raises(ValueError, match="at least 22 px"):
        TrainConfig(data="/d", strategy="scratch", image_size=20, conv_blocks=3).resolved()


def test_n_images_per_class_is_a_seeded_exact_subset():
    items = [(f"{cls}{i}.png", label) for label, cls in enumerate("abc") for i in range(10 + 5 * label)]
    picked = data.per_class_subset(items, 4, seed=1)
    assert [sum(1 for _, lab in picked if lab == k) for k in range(3)] == [4, 4, 4]
    assert picked == data.per_class_subset(items, 4, seed=1)  # the same seed, the same images
    assert picked != data.per_class_subset(items, 4, seed=2)
    assert picked == [item for item in items if item in picked]  # in their order
    assert data.per_class_subset(items, 100, seed=1) == items  # fewer than N: all of them


def test_a_training_on_n_images_per_class_uses_exactly_those(shapes, runs_dir):
    job = Job(tiny_config(shapes, runs_dir, per_class=3, epochs=1))
    result = job.run()
    assert job.error is None, job.error
    counts = runs.read_run(result["run_dir"]).config["dataset"]["counts"]["train"]
    assert counts == {"circle": 3, "square": 3, "triangle": 3}
    assert any("at most 3 images per class" in str(line) for line in job.logs)


def digits(root: str, per_class: int = 8) -> str:
    """A folder of 28x28 grayscale 'digits': strokes of a zero and a one, jittered."""
    rng = np.random.default_rng(0)
    for label in ("0", "1"):
        os.makedirs(os.path.join(root, label), exist_ok=True)
        for i in range(per_class):
            img = Image.new("L", (28, 28), 0)
            draw = ImageDraw.Draw(img)
            dx, dy = rng.integers(-3, 4, 2)
            if label == "0":
                draw.ellipse((8 + dx, 5 + dy, 20 + dx, 23 + dy), outline=255, width=3)
            else:
                draw.line((14 + dx, 4 + dy, 14 + dx, 24 + dy), fill=255, width=3)
            img.save(os.path.join(root, label, f"{i}.png"))
    return root


@pytest.mark.parametrize("network", ["convnet", "dense"])
def test_grayscale_digits_train_on_one_channel_at_28_px(tmp_path, runs_dir, network):
    job = Job(tiny_config(digits(str(tmp_path / "digits")), runs_dir, image_size=28, color_mode="grayscale",
                          network=network, conv_blocks=3, epochs=1))
    result = job.run()
    assert job.error is None, job.error
    model = runs.load_model(result["run_dir"])
    assert tuple(model.input.shape) == (None, 28, 28, 1)
    assert runs.read_run(result["run_dir"]).config["color_mode"] == "grayscale"


def test_grayscale_with_a_pretrained_base_is_refused_in_one_sentence():
    with pytest.raises(ValueError, match="Pretrained bases take colour"):
        TrainConfig(data="/d", strategy="feature-extraction", color_mode="grayscale").resolved()


# end to end runs the base on every batch of both phases: the slow tier
@pytest.mark.parametrize("end_to_end", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_each_fine_tune_phase_uses_its_own_optimizer(split_shapes, runs_dir, monkeypatch, end_to_end):
    from core import training

    made, extracted = [], []
    real_make, real_extract = training.make_optimizer, features.extract
    monkeypatch.setattr(training, "make_optimizer", lambda *a: made.append(real_make(*a)) or made[-1])
    monkeypatch.setattr(features, "extract", lambda *a, **k: extracted.append(1) or real_extract(*a, **k))
    job = Job(tiny_config(split_shapes, runs_dir, strategy="fine-tune", base="mobilenet_025", image_size=32,
                          epochs=1, fine_tune_epochs=1, unfreeze=3, optimizer="adagrad", learning_rate=3e-3,
                          fine_tune_optimizer="sgd", fine_tune_learning_rate=2e-4, momentum=0.8, nesterov=True,
                          end_to_end=end_to_end, augment=end_to_end))
    job.run()
    assert job.error is None, job.error
    assert [e["phase"] for e in job.epochs] == ["head", "fine-tune"]
    assert [type(o).__name__ for o in made] == ["Adagrad", "SGD"]
    assert [float(o.learning_rate) for o in made] == pytest.approx([3e-3, 2e-4])
    assert float(made[1].momentum) == pytest.approx(0.8) and made[1].nesterov
    assert bool(extracted) is not end_to_end  # end to end: the base runs on every batch, nothing cached


def test_only_settings_the_training_uses_count_as_changes():
    from dataclasses import replace

    scratch = recipes.get("dlwp-5.2-scratch")
    config = scratch.config("/d")
    # a form holds values for settings a scratch training without augmentation never reads
    assert recipes.changed_settings(replace(config, augment_config={"rotation": 10}, fine_tune_learning_rate=1e-3,
                                            head="flatten_dense", base="vgg16"), scratch) == []
    assert recipes.changed_settings(replace(config, augment=True), scratch) == ["augment", "augment_config"]
    tutorial = recipes.get("tf-tutorial")
    assert recipes.changed_settings(replace(tutorial.config("/d"), strategy="feature-extraction"),
                                    tutorial) == ["strategy"]
    assert recipes.stamp(config, None).recipe is None
