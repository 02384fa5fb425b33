"""Recipes: the published experiments of the references as named, versioned presets.

A recipe is a frozen record: the settings of one published training (the TrainConfig fields it
sets), where it was published and the accuracy published for it. `recipe.config(data)` is the
TrainConfig that runs it; a run records the recipe's name and version and the settings the person
changed from it (`stamp`). No TensorFlow here: the Train page and `--list-recipes` read these
cheaply.

What the references did and what we do differently is in each recipe's notes and in
docs/RECIPES.md. A recipe is never edited in place once published: a changed recipe gets a new
version, so a run's (name, version) always says which settings it started from.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace

from core.augment import AugmentConfig
from core.backbones import BACKBONES, keras_cache_dir
from core.jobs import TrainConfig
from core.messages import ConfigError, Message, N_

# Settings that say where and how fast a training runs, not what it trains: never "changed from the recipe".
NOT_RECIPE_SETTINGS = frozenset({"data", "runs_dir", "devices", "mixed_precision", "xla", "memory_budget_mb",
                                 "recipe", "recipe_version", "recipe_changes"})
CATS_AND_DOGS = N_("cats vs dogs, 2,000 training photos")

DLWP = "Deep Learning with Python (F. Chollet, 1st ed., 2017)"
DLWP_NOTEBOOKS = "https://github.com/fchollet/deep-learning-with-python-notebooks/tree/master/first_edition"
KERAS_BLOG = 'Keras blog, "Building powerful image classification models using very little data" (F. Chollet, 2016)'
KERAS_BLOG_URL = "https://blog.keras.io/building-powerful-image-classification-models-using-very-little-data.html"
TF_TUTORIAL = 'TensorFlow tutorial "Transfer learning and fine-tuning" (tensorflow.org)'
TF_TUTORIAL_URL = "https://www.tensorflow.org/tutorials/images/transfer_learning"

# The augmentations of the references, in our AugmentConfig's units (docs/RECIPES.md says why).
BOOK_AUGMENTATION = AugmentConfig.classic()  # rotation 40, shifts 0.2, shear 0.2, zoom 0.2, flip, nearest
BLOG_AUGMENTATION = AugmentConfig.light()    # shear 0.2, zoom 0.2, flip
# RandomFlip("horizontal") + RandomRotation(0.2): 0.2 of a full turn is ±72°; its default fill is reflect.
TUTORIAL_AUGMENTATION = AugmentConfig(rotation=72, horizontal_flip=True, fill_mode="reflect")

# What every reference shared: photos stretched to the input size (flow_from_directory,
# image_dataset_from_directory), one sigmoid output (a two-way softmax here: the same model).
_STRETCHED = (("resize", "stretch"),)
_BOOK_VGG16 = _STRETCHED + (("base", "vgg16"), ("image_size", 150), ("head", "flatten_dense"), ("head_units", 256),
                            ("optimizer", "rmsprop"), ("batch_size", 20))
_SIGMOID = N_("The reference ends in one sigmoid unit with binary cross-entropy; here a two-way softmax with "
              "cross-entropy, the same model for two classes.")
_SLOW = N_("Slow on a CPU: the whole VGG16 base runs on every image of every epoch (minutes per epoch on a GPU, "
           "hours for the whole training on two CPU cores).")
_VGG16_OFFLINE = N_("VGG16's ImageNet weights (58 MB) are downloaded on the first run; offline they must already "
                    "be in the Keras cache.")


@dataclass(frozen=True)
class Published:
    """One published figure: what it is of (a step or phase, translatable) and the accuracy."""
    label: str
    accuracy: float  # 0..1


@dataclass(frozen=True)
class Recipe:
    name: str                # the key: command line, config.json, URL
    version: int
    title: str               # what a user reads (N_)
    source: str              # the reference (a citation: not translated)
    url: str
    published: tuple[Published, ...]  # one figure per step, in order; the last is the recipe's result
    published_on: str        # "validation" or "test": the split the reference reported
    # (TrainConfig field, value) pairs: everything the reference set (an AugmentConfig is not
    # hashable: the record hashes by its other fields)
    settings: tuple = field(hash=False)
    notes: tuple[str, ...] = ()  # N_ sentences: what differs from the reference, what it costs
    dataset: str = CATS_AND_DOGS  # what the published figure was measured on (N_)

    @property
    def overrides(self) -> dict:
        """The TrainConfig fields the recipe sets (augment_config as a dict)."""
        return {k: (v.to_dict() if isinstance(v, AugmentConfig) else v) for k, v in self.settings}

    @property
    def accuracy(self) -> float:
        """The published result of the whole recipe (its last step)."""
        return self.published[-1].accuracy

    def published_text(self) -> str:
        """'71 %', or one figure per step: '80 / 90 / 94 %' (numbers: the same in every language)."""
        return " / ".join(f"{100 * p.accuracy:g}" for p in self.published) + " %"

    def config(self, data: str, **changes) -> TrainConfig:
        """The TrainConfig that runs this recipe on `data`, with `changes` applied and recorded."""
        plain = TrainConfig(data=data, **{**self.overrides, **changes})
        return stamp(plain, self)

    def weights_problem(self) -> Message | None:
        """Why this recipe cannot run offline here (its base's ImageNet weights are not in the Keras
        cache: they download on the first run when there is internet), or None."""
        o = self.overrides
        if o.get("strategy") == "scratch" or o.get("weights", "imagenet") is None:
            return None
        spec = BACKBONES[o["base"]]
        if spec.weights_cached(o["image_size"]):
            return None
        return Message(N_("{base}'s ImageNet weights ({file}) are not in the Keras cache ({folder}): the first run "
                          "downloads them, which needs internet."),
                       {"base": spec.label, "file": spec.weights_name(o["image_size"]), "folder": keras_cache_dir()})


def _unused(c: TrainConfig) -> set[str]:
    """The settings this config's training never reads (a form may still hold a value for them)."""
    scratch, fine_tune = c.strategy == "scratch", c.strategy == "fine-tune"
    unused = {
        "augment_config": not c.augment,
        "views": not c.augment or scratch or c.end_to_end,
        "fine_tune_optimizer": not fine_tune, "fine_tune_learning_rate": not fine_tune,
        "fine_tune_epochs": not fine_tune, "unfreeze": not fine_tune,
        "head": scratch, "end_to_end": scratch, "weights": scratch, "base": scratch,
        "head_units": scratch or c.head != "flatten_dense",
        "network": not scratch, "conv_blocks": not scratch or c.network != "convnet",
        "batch_norm": not scratch or c.network != "convnet",
        "momentum": "sgd" not in (c.optimizer, c.fine_tune_optimizer if fine_tune else None),
        "nesterov": "sgd" not in (c.optimizer, c.fine_tune_optimizer if fine_tune else None),
    }
    return {name for name, is_unused in unused.items() if is_unused}


def _settings(config: TrainConfig) -> tuple[dict, set[str]]:
    """A config's settings with the defaults filled in, and the names of those its training uses."""
    try:
        config = config.resolved()
    except ValueError:
        pass  # compared as given: the page refuses the bad value on Start
    values = asdict(config)
    return values, set(values) - NOT_RECIPE_SETTINGS - _unused(config)


def changed_settings(config: TrainConfig, recipe: Recipe) -> list[str]:
    """The TrainConfig fields whose value in `config` differs from the recipe's, sorted: only the
    settings the configured training uses (a fine-tune learning rate is no change to a scratch
    recipe; turning augmentation on changes augment and augment_config)."""
    ours, used = _settings(config)
    theirs, _ = _settings(TrainConfig(data=config.data, **recipe.overrides))
    return sorted(k for k in used if ours[k] != theirs[k])


def stamp(config: TrainConfig, recipe: Recipe | None) -> TrainConfig:
    """`config` marked as started from `recipe` (name, version, the settings changed from it);
    with None, the marks removed."""
    if recipe is None:
        return replace(config, recipe=None, recipe_version=None, recipe_changes=None)
    return replace(config, recipe=recipe.name, recipe_version=recipe.version,
                   recipe_changes=changed_settings(config, recipe))


_TRAIN_FIELDS = {f.name for f in fields(TrainConfig)}

RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe(
        "dlwp-5.2-scratch", 1, N_("Deep Learning with Python §5.2: a small convnet from scratch"),
        f"{DLWP}, §5.2 (listings 5.5–5.8)", f"{DLWP_NOTEBOOKS}/5.2-using-convnets-with-small-datasets.ipynb",
        (Published(N_("small convnet"), 0.71),), "validation",
        _STRETCHED + (("strategy", "scratch"), ("network", "convnet"), ("image_size", 150), ("optimizer", "rmsprop"),
                      ("learning_rate", 1e-4), ("batch_size", 20), ("epochs", 30), ("augment", False),
                      ("dropout", 0.0)),
        (_SIGMOID, N_("The book's first convnet has no dropout; it overfits after about 5 epochs, on purpose."))),
    Recipe(
        "dlwp-5.2-augment", 1, N_("Deep Learning with Python §5.2: data augmentation and dropout"),
        f"{DLWP}, §5.2.5 (listings 5.11–5.14)", f"{DLWP_NOTEBOOKS}/5.2-using-convnets-with-small-datasets.ipynb",
        (Published(N_("small convnet, augmentation and dropout"), 0.82),), "validation",
        _STRETCHED + (("strategy", "scratch"), ("network", "convnet"), ("image_size", 150), ("optimizer", "rmsprop"),
                      ("learning_rate", 1e-4), ("batch_size", 32), ("epochs", 100), ("augment", True),
                      ("augment_config", BOOK_AUGMENTATION), ("dropout", 0.5)),
        (_SIGMOID, N_("100 epochs of augmented images: slow on a CPU (half an hour or more on two cores)."))),
    Recipe(
        "dlwp-5.3-features", 1, N_("Deep Learning with Python §5.3: VGG16 bottleneck features"),
        f"{DLWP}, §5.3.1 (listings 5.17–5.18)", f"{DLWP_NOTEBOOKS}/5.3-using-a-pretrained-convnet.ipynb",
        (Published(N_("bottleneck features"), 0.90),), "validation",
        _BOOK_VGG16 + (("strategy", "feature-extraction"), ("learning_rate", 2e-5), ("epochs", 30),
                       ("augment", False), ("dropout", 0.5)),
        (_SIGMOID, N_("The features are computed once per image and the Flatten, Dense 256, Dropout 0.5 head is "
                      "trained on them, as in the book."), _VGG16_OFFLINE)),
    Recipe(
        "dlwp-5.3-frozen-augment", 1,
        N_("Deep Learning with Python §5.3: frozen VGG16 with data augmentation, end to end"),
        f"{DLWP}, §5.3.1 (listings 5.20–5.21)", f"{DLWP_NOTEBOOKS}/5.3-using-a-pretrained-convnet.ipynb",
        (Published(N_("frozen base with augmentation"), 0.96),), "validation",
        _BOOK_VGG16 + (("strategy", "feature-extraction"), ("end_to_end", True), ("learning_rate", 2e-5),
                       ("epochs", 30), ("augment", True), ("augment_config", BOOK_AUGMENTATION), ("dropout", 0.0)),
        (_SIGMOID, N_("The book's model here has no dropout: Flatten, Dense 256, the output."), _SLOW,
         _VGG16_OFFLINE)),
    Recipe(
        "dlwp-5.3-fine-tune", 1, N_("Deep Learning with Python §5.3: fine-tuning VGG16's block5"),
        f"{DLWP}, §5.3.2 (listings 5.22–5.24)", f"{DLWP_NOTEBOOKS}/5.3-using-a-pretrained-convnet.ipynb",
        (Published(N_("frozen base with augmentation"), 0.96), Published(N_("block5 fine-tuned"), 0.97)),
        "validation",
        _BOOK_VGG16 + (("strategy", "fine-tune"), ("end_to_end", True), ("learning_rate", 2e-5), ("epochs", 30),
                       ("fine_tune_optimizer", "rmsprop"), ("fine_tune_learning_rate", 1e-5),
                       ("fine_tune_epochs", 100), ("unfreeze", 4), ("augment", True),
                       ("augment_config", BOOK_AUGMENTATION), ("dropout", 0.0)),
        (_SIGMOID, N_("Unfreezing 4 layers trains block5_conv1 to block5_conv3 (block5_pool has no weights), as "
                      "the book's set_trainable from block5_conv1."),
         N_("The book reports 97 % on its test split too."), _SLOW, _VGG16_OFFLINE)),
    Recipe(
        "keras-blog-1-scratch", 1, N_("Keras blog, very little data, step 1: a small convnet with augmentation"),
        KERAS_BLOG, KERAS_BLOG_URL, (Published(N_("small convnet"), 0.80),), "validation",
        _STRETCHED + (("strategy", "scratch"), ("network", "convnet"), ("image_size", 150), ("optimizer", "rmsprop"),
                      ("learning_rate", 1e-3), ("batch_size", 16), ("epochs", 50), ("augment", True),
                      ("augment_config", BLOG_AUGMENTATION), ("dropout", 0.5)),
        (_SIGMOID, N_("The blog's convnet is smaller (conv 32, 32, 64 and Dense 64); this recipe trains the book's "
                      "small convnet (conv 32, 64, 128, 128 and Dense 512) with the blog's other settings."))),
    Recipe(
        "keras-blog-2-bottleneck", 1, N_("Keras blog, very little data, step 2: VGG16 bottleneck features"),
        KERAS_BLOG, KERAS_BLOG_URL, (Published(N_("bottleneck features"), 0.90),), "validation",
        _BOOK_VGG16 + (("strategy", "feature-extraction"), ("learning_rate", 1e-3), ("batch_size", 16),
                       ("epochs", 50), ("augment", False), ("dropout", 0.5)),
        (_SIGMOID, _VGG16_OFFLINE)),
    Recipe(
        "keras-blog-3-fine-tune", 1, N_("Keras blog, very little data, step 3: fine-tuning the last conv block"),
        KERAS_BLOG, KERAS_BLOG_URL,
        (Published(N_("bottleneck features"), 0.90), Published(N_("last conv block fine-tuned"), 0.94)), "validation",
        _BOOK_VGG16 + (("strategy", "fine-tune"), ("end_to_end", True), ("learning_rate", 1e-3), ("batch_size", 16),
                       ("epochs", 50), ("fine_tune_optimizer", "sgd"), ("fine_tune_learning_rate", 1e-4),
                       ("momentum", 0.9), ("fine_tune_epochs", 50), ("unfreeze", 4), ("augment", True),
                       ("augment_config", BLOG_AUGMENTATION), ("dropout", 0.5)),
        (_SIGMOID, N_("The blog trains the head of step 2 on features without augmentation, then fine-tunes; here "
                      "both phases see augmented images."), _SLOW, _VGG16_OFFLINE)),
    Recipe(
        "tf-tutorial", 1, N_("TensorFlow tutorial: MobileNetV2 frozen with augmentation, then fine-tuned"),
        TF_TUTORIAL, TF_TUTORIAL_URL,
        (Published(N_("frozen base with augmentation"), 0.94), Published(N_("fine-tuned from layer 100"), 0.98)),
        "validation",
        _STRETCHED + (("strategy", "fine-tune"), ("end_to_end", True), ("base", "mobilenet_v2"), ("image_size", 160),
                      ("head", "pooling"), ("dropout", 0.2), ("optimizer", "adam"), ("learning_rate", 1e-4),
                      ("batch_size", 32), ("epochs", 10), ("fine_tune_optimizer", "rmsprop"),
                      ("fine_tune_learning_rate", 1e-5), ("fine_tune_epochs", 10), ("unfreeze", 54),
                      ("augment", True), ("augment_config", TUTORIAL_AUGMENTATION)),
        (_SIGMOID, N_("Fine-tuning from layer 100 of MobileNetV2's 154 unfreezes its top 54 layers."),
         N_("The base runs on every image of every epoch: minutes on a CPU, as the tutorial does."))),
    Recipe(
        "ours-fast", 1, N_("Ours (fast): MobileNetV2 features computed once, central crop"),
        "Transfer Lab, docs/BENCHMARKS.md (2026-11-29)", "docs/BENCHMARKS.md",
        (Published(N_("feature extraction"), 0.983),), "test",
        (("strategy", "feature-extraction"), ("base", "mobilenet_v2"), ("image_size", 160), ("resize", "crop"),
         ("head", "pooling"), ("dropout", 0.2), ("optimizer", "adam"), ("learning_rate", 1e-3), ("batch_size", 32),
         ("epochs", 30), ("augment", False)),
        (N_("The best result here for its time: the base runs once per image, the head trains on the cached "
            "features in seconds; central square crops beat stretched photos by 0.8 points."),)),
)}

for _r in RECIPES.values():  # a typo in a recipe fails at import, not in a person's training
    assert {k for k, _ in _r.settings} <= _TRAIN_FIELDS, _r.name


def get(name: str) -> Recipe:
    """The recipe of that name; ConfigError naming the choices when there is none."""
    if name not in RECIPES:
        raise ConfigError(N_("Unknown recipe '{recipe}': choose one of {choices} (--list-recipes shows them)."),
                          recipe=name, choices=", ".join(RECIPES))
    return RECIPES[name]


def listing() -> str:
    """Every recipe, for --list-recipes: name and version, title, source, published figure (English)."""
    lines = []
    for r in RECIPES.values():
        steps = "; ".join(f"{p.label} {100 * p.accuracy:g} %" for p in r.published)
        lines += [f"{r.name} (v{r.version})  {r.title}",
                  f"    source: {r.source}",
                  f"    published: {r.published_text()} {r.published_on} accuracy ({steps}), {r.dataset}"]
        if r.weights_problem():
            lines.append(f"    offline: {r.weights_problem()}")
    return "\n".join(lines)
