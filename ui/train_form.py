"""The Train page's form: every setting of one training, the base's layers, and why Start cannot run yet.

Widgets keep their values in st.session_state (persist_state="session": switching pages loses
nothing). The page reads one TrainConfig from `settings(ds)` and asks `start_problem` before Start.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import data, pipeline, recipes
from core.backbones import BACKBONES, keras_cache_dir
from core.augment import AugmentConfig
from core.jobs import COLOR_MODE_LABELS, COLOR_MODES, CONV_BLOCKS_MIN_SIZE, DEFAULT_DROPOUT, DEFAULT_EPOCHS, \
    DEFAULT_FINE_TUNE_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULTS, HEAD_LABELS, HEADS, NETWORK_LABELS, NETWORKS, \
    OPTIMIZERS, RESIZE_MODES, STRATEGIES, STRATEGY_LABELS, TrainConfig
from ui import cache, i18n, state, widgets
from ui.i18n import N_, fmt_int, fmt_num, nt, t

STRATEGY_HELP = {
    "scratch": N_("A small convnet learns everything from your images (rungs 1–2 of the ladder)."),
    "feature-extraction": N_("A network pretrained on ImageNet stays frozen; only a new head learns (rung 3)."),
    "fine-tune": N_("The head first, then the top layers of the base too, at a low learning rate (rung 4)."),
}
# The layer table's columns (core.models.layer_table's keys) as the user reads them.
LAYER_COLUMNS = {"from_top": "#", "name": N_("name"), "type": N_("type"), "params": N_("params"),
                 "trains": N_("trains"), "note": N_("note")}
BATCH_SIZES = [8, 16, 20, 32, 64, 128]
LEARNING_RATES = [1e-5, 2e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
MAX_IMAGE_SIZE = 1024
SESSION = "session"  # persist_state: the settings survive page switches
RECIPE = "recipe"  # the chosen recipe's name ("" for none)
AUGMENT_TOUCHED = "augment_touched"  # the person switched augmentation on the Train page itself
UNFREEZE_PRESETS = "unfreeze_presets"  # base -> the layer count a recipe unfreezes (else the base's default)
SAME_OPTIMIZER = "same"  # the fine-tune phase's optimizer choice meaning "the first phase's"
# The TrainConfig fields the form shows, each in the widget of the same key; the per-strategy ones
# (their defaults differ by strategy) in "epochs_fine-tune", "dropout_scratch"...
FORM_FIELDS = ("strategy", "base", "image_size", "batch_size", "epochs", "fine_tune_epochs", "dropout", "optimizer",
               "learning_rate", "fine_tune_learning_rate", "augment", "views", "resize", "head", "head_units",
               "end_to_end", "fine_tune_optimizer", "momentum", "nesterov", "l2", "network", "conv_blocks",
               "batch_norm", "color_mode", "per_class")
PER_STRATEGY = ("epochs", "dropout")
RESIZE_LABELS = {"crop": N_("Central square crop"), "stretch": N_("Stretch the whole image")}
# Sizes of the no-top ImageNet weights files keras.applications downloads, in MB.
DOWNLOAD_MB = {"mobilenet_v2": 9.4, "mobilenet": 17.2, "mobilenet_025": 2.1, "vgg16": 58.9, "resnet50": 94.7,
               "efficientnet_b0": 16.7, "xception": 83.7, "inception_v3": 87.9}


def strategy_label(strategy: str) -> str:
    return t(STRATEGY_LABELS[strategy])


def settings(ds) -> TrainConfig:
    """Every setting of one training: the recipe, the strategy, four columns, then the advanced ones."""
    recipe = recipe_picker()
    strategy = st.radio(t("Strategy"), STRATEGIES, index=STRATEGIES.index(DEFAULTS.strategy), horizontal=True,
                        format_func=strategy_label, captions=[t(STRATEGY_HELP[s]) for s in STRATEGIES],
                        key="strategy", persist_state=SESSION)
    columns = st.columns(4, gap="medium")
    with columns[0]:
        chosen = model_settings(strategy)
    with columns[1]:
        chosen |= schedule_settings(strategy)
    with columns[2]:
        chosen |= optimizer_settings(strategy)
    with columns[3]:
        chosen |= data_settings(strategy)
    chosen["unfreeze"] = unfreeze_slider(chosen["base"], num_classes(ds)) if strategy == "fine-tune" else 0
    if strategy != "scratch":
        base_layers_table(chosen["base"], chosen["unfreeze"], num_classes(ds), expanded=strategy == "fine-tune")
    with st.expander(t("Advanced settings"), icon=":material/tune:"):
        chosen |= advanced_settings(strategy, chosen["optimizer"])
    val_fraction, test_fraction, _ = state.split_settings()
    augment_config = state.augment_config().to_dict() if chosen["augment"] else None
    config = TrainConfig(data=state.dataset_path(), strategy=strategy, augment_config=augment_config,
                         val_fraction=val_fraction, test_fraction=test_fraction, runs_dir=state.runs_dir(), **chosen)
    config = recipes.stamp(config, recipe)
    if recipe and config.recipe_changes:
        st.caption(t("Changed from the recipe: {settings}", settings=", ".join(config.recipe_changes)))
    return config


# ---------------------------------------------------------------- recipes

def recipe_title(name: str) -> str:
    """The recipe's title, marked when its base's weights would have to be downloaded first."""
    if not name:
        return t("None: the settings below as they are")
    recipe = recipes.RECIPES[name]
    if recipe.weights_problem():
        return t("{recipe} — download needed", recipe=t(recipe.title))
    return t(recipe.title)


def recipe_picker() -> recipes.Recipe | None:
    """A published experiment that fills the form (everything stays editable), with its source and result."""
    picker, about = st.columns(2, gap="medium")
    name = picker.selectbox(t("Recipe"), [""] + list(recipes.RECIPES), format_func=recipe_title, key=RECIPE,
                            on_change=apply_recipe, persist_state=SESSION,
                            help=t("A training published in a book, a blog or a tutorial: choosing one sets "
                                   "every setting below as it was published; you can still change any of them."))
    recipe = recipes.RECIPES.get(name)
    if recipe:
        with about:
            recipe_facts(recipe)
    return recipe


def recipe_facts(recipe: recipes.Recipe) -> None:
    """Where the recipe was published, what it reached there, and what differs here."""
    st.markdown(t("**Source:** [{source}]({url})", source=widgets.plain(recipe.source), url=recipe.url))
    st.markdown(t("**Published:** {figures} {split} accuracy ({steps}), on {dataset}",
                  figures=published_figures(recipe), split=t(recipe.published_on),
                  steps="; ".join(t(p.label) for p in recipe.published), dataset=t(recipe.dataset)))
    for note in recipe.notes:
        st.caption(t(note))


def published_figures(recipe: recipes.Recipe) -> str:
    """'80 / 90 / 94 %' in the reader's number format."""
    return " / ".join(i18n.fmt_pct(p.accuracy, 0 if float(p.accuracy * 100).is_integer() else 1)
                      for p in recipe.published)


def recipe_line(config: dict) -> str | None:
    """'Recipe: … · published 97 % validation accuracy' for a run's settings, None without a recipe."""
    recipe = recipes.RECIPES.get(config.get("recipe") or "")
    if recipe is None:
        return None
    changes = config.get("recipe_changes") or []
    return t("Recipe: {title} · published {figures} {split} accuracy · changed: {changes}",
             title=t(recipe.title), figures=published_figures(recipe), split=t(recipe.published_on),
             changes=", ".join(changes) if changes else t("nothing"))


def form_values(overrides: dict) -> dict:
    """Every TrainConfig field a widget shows, as the widget holds it, for these recipe settings."""
    c = TrainConfig(data="", **overrides)
    values = {field: getattr(c, field) for field in FORM_FIELDS}
    values["epochs"] = DEFAULT_EPOCHS[c.strategy] if c.epochs is None else c.epochs
    values["fine_tune_epochs"] = c.fine_tune_epochs or DEFAULT_FINE_TUNE_EPOCHS
    values["dropout"] = float(DEFAULT_DROPOUT[c.strategy] if c.dropout is None else c.dropout)
    values["learning_rate"] = c.learning_rate or DEFAULT_LEARNING_RATE
    values["fine_tune_optimizer"] = c.fine_tune_optimizer or SAME_OPTIMIZER
    values["per_class"] = c.per_class or 0
    values["base"] = c.base if c.base in BACKBONES else DEFAULTS.base
    return values


def widget_key(field: str, strategy: str) -> str:
    return f"{field}_{strategy}" if field in PER_STRATEGY else field


def apply_recipe() -> None:
    """The recipe's settings into every widget (none: today's defaults); runs before the widgets are drawn."""
    recipe = recipes.RECIPES.get(st.session_state.get(RECIPE) or "")
    overrides = recipe.overrides if recipe else {}
    values = form_values(overrides)
    for field in FORM_FIELDS:
        st.session_state[widget_key(field, values["strategy"])] = values[field]
    if "augment" in overrides:  # the recipe decides augmentation; without one it follows the Augment page
        st.session_state[AUGMENT_TOUCHED] = True
    else:
        st.session_state.pop(AUGMENT_TOUCHED, None)
    if overrides.get("augment_config"):
        state.set_augment_config(AugmentConfig.from_dict(overrides["augment_config"]))
        for name in overrides["augment_config"]:  # the Augment page reseeds its sliders from the new config
            st.session_state.pop(f"aug_{name}", None)
    base = values["base"]
    presets = dict(st.session_state.get(UNFREEZE_PRESETS, {}))
    presets[base] = overrides.get("unfreeze") or BACKBONES[base].default_unfreeze
    st.session_state[UNFREEZE_PRESETS] = presets
    st.session_state.pop(f"unfreeze_{base}", None)  # the slider starts again from the preset


# ---------------------------------------------------------------- the four columns

def base_label(base: str, image_size: int) -> str:
    """'VGG16 — download needed (59 MB, internet)' for a base whose weights are not on this machine."""
    label = BACKBONES[base].label
    if BACKBONES[base].weights_cached(image_size):
        return label
    return t("{base} — download needed ({size} MB, internet)", base=label, size=fmt_num(DOWNLOAD_MB[base], 0))


def model_settings(strategy: str) -> dict:
    """The pretrained base (marked when its weights must be downloaded), the image size and the batch size."""
    size = int(st.session_state.get("image_size", DEFAULTS.image_size))
    return {
        "base": st.selectbox(t("Pretrained base"), list(BACKBONES), format_func=lambda k: base_label(k, size),
                             key="base", disabled=strategy == "scratch", persist_state=SESSION,
                             help=t("The ImageNet network whose features are reused (not used from scratch).")),
        "image_size": int(st.number_input(
            t("Image size (px)"), min_value=16, max_value=MAX_IMAGE_SIZE, value=DEFAULTS.image_size, step=1,
            key="image_size", persist_state=SESSION,
            help=t("Every image is resized to this many pixels square. Larger sees more detail but trains "
                   "slower; each base has a smallest size it accepts."))),
        "batch_size": st.select_slider(t("Batch size"), BATCH_SIZES, value=DEFAULTS.batch_size, key="batch_size",
                                       persist_state=SESSION),
    }


def schedule_settings(strategy: str) -> dict:
    """Epochs of each phase and dropout (defaults per strategy, as the engine's)."""
    fine_tune = strategy == "fine-tune"
    return {
        "epochs": int(st.number_input(t("Epochs (head)") if fine_tune else t("Epochs"), 1, 500,
                                      value=DEFAULT_EPOCHS[strategy], key=f"epochs_{strategy}",
                                      persist_state=SESSION)),
        "fine_tune_epochs": int(st.number_input(t("Fine-tune epochs"), 1, 500, value=DEFAULT_FINE_TUNE_EPOCHS,
                                                key="fine_tune_epochs", disabled=not fine_tune,
                                                persist_state=SESSION)),
        "dropout": st.slider(t("Dropout"), 0.0, 0.9, step=0.05, value=DEFAULT_DROPOUT[strategy],
                             key=f"dropout_{strategy}", persist_state=SESSION,
                             help=t("The share of the head's inputs switched off at random in each training step, "
                                    "so that the head cannot rely on a few of them.")),
    }


def optimizer_settings(strategy: str) -> dict:
    """The optimizer and its learning rates (a low one for fine-tuning, as the references insist)."""
    return {
        "optimizer": st.selectbox(t("Optimizer"), OPTIMIZERS, key="optimizer", persist_state=SESSION,
                                  help=t("How the weights move after each batch. For fine-tuning, this is the "
                                         "head phase's; the fine-tune phase's is under Advanced settings.")),
        "learning_rate": st.select_slider(t("Learning rate"), LEARNING_RATES, value=DEFAULT_LEARNING_RATE,
                                          format_func="{:g}".format, key="learning_rate", persist_state=SESSION),
        "fine_tune_learning_rate": st.select_slider(
            t("Fine-tune learning rate"), LEARNING_RATES, value=DEFAULTS.fine_tune_learning_rate,
            format_func="{:g}".format, key="fine_tune_learning_rate", disabled=strategy != "fine-tune",
            persist_state=SESSION),
    }


def data_settings(strategy: str) -> dict:
    """Augmentation on or off (its settings come from the Augment page), views, seed."""
    if not st.session_state.get(AUGMENT_TOUCHED):  # follows the Augment page until switched here
        st.session_state["augment"] = state.augment_chosen()
    augment = st.toggle(t("Data augmentation"), key="augment", persist_state=SESSION,
                        on_change=st.session_state.__setitem__, args=(AUGMENT_TOUCHED, True))
    st.caption(t("{augmentation} — set on the Augment page.",
                 augmentation=widgets.describe_augment(state.augment_config())))
    views = st.number_input(t("Augmented views per image"), 1, 16, value=DEFAULTS.views, key="views",
                            persist_state=SESSION,
                            disabled=not augment or strategy == "scratch",
                            help=t("Feature extraction caches the base's output for this many augmented "
                                   "versions of every training image."))
    seed = widgets.seed_input(t("Seeds the weights, the shuffling and (for a folder of class folders) the split."))
    return {"augment": augment, "views": int(views), "seed": int(seed)}


# ---------------------------------------------------------------- advanced settings

def advanced_settings(strategy: str, optimizer: str) -> dict:
    """The settings the published recipes need beyond the usual ones, in three columns."""
    transfer, scratch = strategy != "scratch", strategy == "scratch"
    model, training, images = st.columns(3, gap="medium")
    with model:
        head = st.radio(t("Head"), HEADS, format_func=lambda h: t(HEAD_LABELS[h]), key="head", disabled=scratch,
                        persist_state=SESSION,
                        help=t("What sits on the base: one average per feature map (few weights), or all its "
                               "outputs flattened into a dense layer (the book's head, many more weights)."))
        units = st.number_input(t("Dense units"), 1, 4096, value=DEFAULTS.head_units, key="head_units",
                                disabled=scratch or head != "flatten_dense", persist_state=SESSION,
                                help=t("Neurons in the head's dense layer."))
        end_to_end = st.toggle(t("Run the frozen base on every batch"), key="end_to_end", disabled=scratch,
                               persist_state=SESSION,
                               help=t("As the book and the tutorial do: augmentation is new at every epoch, but "
                                      "the base runs on every image of every epoch, which is slow on a CPU. Off: "
                                      "the base runs once per image and the head trains in seconds."))
        network = st.radio(t("Network trained from scratch"), NETWORKS, format_func=lambda n: t(NETWORK_LABELS[n]),
                           key="network", disabled=transfer, persist_state=SESSION)
        blocks = st.number_input(t("Conv + pool blocks"), 1, max(CONV_BLOCKS_MIN_SIZE), value=DEFAULTS.conv_blocks,
                                 key="conv_blocks", disabled=transfer or network != "convnet", persist_state=SESSION,
                                 help=t("Each block halves the image; small images (28 px) need fewer blocks."))
        batch_norm = st.toggle(t("BatchNorm in the small convnet"), key="batch_norm",
                               disabled=transfer or network != "convnet", persist_state=SESSION,
                               help=t("Normalises each layer's outputs batch by batch, which often lets the "
                                      "convnet learn faster."))
    with training:
        fine_tune_optimizer = st.selectbox(
            t("Fine-tune optimizer"), (SAME_OPTIMIZER,) + OPTIMIZERS, key="fine_tune_optimizer",
            format_func=lambda o: t("the same as the first phase") if o == SAME_OPTIMIZER else o,
            disabled=strategy != "fine-tune", persist_state=SESSION,
            help=t("The optimizer of the fine-tune phase; the references often switch to SGD or RMSprop there."))
        uses_sgd = "sgd" in (optimizer, fine_tune_optimizer)
        momentum = st.slider(t("SGD momentum"), 0.0, 0.99, step=0.01, value=DEFAULTS.momentum, key="momentum",
                             disabled=not uses_sgd, persist_state=SESSION,
                             help=t("How much of the previous step SGD keeps: the weights roll on like a ball "
                                    "instead of stopping at every bump."))
        nesterov = st.toggle(t("Nesterov momentum"), key="nesterov", disabled=not uses_sgd, persist_state=SESSION,
                             help=t("SGD looks one step ahead before it corrects: often a little steadier."))
        l2 = st.number_input(t("L2 weight decay"), 0.0, 1.0, value=DEFAULTS.l2, step=1e-4, format="%g", key="l2",
                             persist_state=SESSION,
                             help=t("Penalises large weights in the layers trained from scratch, which fights "
                                    "overfitting; 0 turns it off."))
    with images:
        per_class = st.number_input(t("Training images per class (0 = all)"), 0, 100_000, value=0, key="per_class",
                                    persist_state=SESSION,
                                    help=t("Trains on this many images of each class, picked with the seed: few "
                                           "images show overfitting on purpose."))
        color_mode = st.radio(t("Colour"), COLOR_MODES, format_func=lambda m: t(COLOR_MODE_LABELS[m]),
                              key="color_mode", disabled=transfer, persist_state=SESSION,
                              help=t("Grayscale trains on one channel (digits, X-rays); pretrained bases need "
                                     "colour."))
        resize = st.radio(t("Resize"), RESIZE_MODES, format_func=lambda r: t(RESIZE_LABELS[r]), key="resize",
                          persist_state=SESSION,
                          help=t("A central square keeps the shapes as the ImageNet networks saw them; "
                                 "stretching keeps the whole image, as the book and the tutorial do."))
    return {"head": head, "head_units": int(units), "end_to_end": end_to_end, "network": network,
            "conv_blocks": int(blocks), "batch_norm": batch_norm,
            "fine_tune_optimizer": None if fine_tune_optimizer == SAME_OPTIMIZER else fine_tune_optimizer,
            "momentum": float(momentum), "nesterov": nesterov, "l2": float(l2),
            "per_class": int(per_class) or None, "color_mode": color_mode, "resize": resize}


def num_classes(ds) -> int:
    return len(ds.classes) if ds else 2


# ---------------------------------------------------------------- unfreezing, in layers that learn

def learning_layers(rows: list[dict]) -> list[int]:
    """Indexes (top first) of the base's layers that learn when unfrozen: those with weights, BatchNorm
    excepted (it stays frozen). Pooling, activation and padding layers have nothing to learn."""
    return [i for i, row in enumerate(rows) if row["params"] and row["type"] != "BatchNormalization"]


def layers_for(rows: list[dict], learning: int) -> int:
    """How many layers from the top to unfreeze so that the top `learning` learning layers train."""
    indexes = learning_layers(rows)
    return indexes[learning - 1] + 1 if learning > 0 else 0


def learning_in(rows: list[dict], layers: int) -> int:
    """How many learning layers the top `layers` layers hold."""
    return sum(1 for i in learning_layers(rows) if i < layers)


def unfreeze_slider(base: str, n_classes: int) -> int:
    """How many layers that learn (conv and dense), counted from the top, train in the fine-tune phase.
    Returns the engine's count: layers from the top (BatchNorm, pooling and activations included)."""
    rows, _ = cache.base_layers(base, n_classes, 0)
    preset = st.session_state.get(UNFREEZE_PRESETS, {}).get(base, BACKBONES[base].default_unfreeze)
    learning = st.slider(t("Layers of {base} that learn when unfrozen (from the top)", base=BACKBONES[base].label),
                         0, len(learning_layers(rows)), value=learning_in(rows, preset), key=f"unfreeze_{base}",
                         persist_state=SESSION,
                         help=t("Counts the layers with weights that will learn (convolutions and dense "
                                "layers). BatchNormalization layers stay frozen, in inference mode, as the "
                                "references advise."))
    # The preset's own count when the slider still says it (the tutorial's "from layer 100" stays 54).
    return preset if learning_in(rows, preset) == learning else layers_for(rows, learning)


def base_layers_table(base: str, n: int, num_classes: int, expanded: bool) -> None:
    """The base's layers, top first, with the top n (those that will train) highlighted."""
    rows, trainable = cache.base_layers(base, num_classes, n)
    total = sum(r["params"] for r in rows)
    label = BACKBONES[base].label
    learning = learning_layers(rows)
    with st.expander(t("{base}: {layers} layers ({learning} with weights that can learn) · {params} trainable "
                       "parameters", base=label, layers=fmt_int(len(rows)), learning=fmt_int(len(learning)),
                       params=fmt_int(trainable)),
                     expanded=expanded):
        cols = st.columns(3)
        cols[0].metric(t("Layers unfrozen"), t("{n} of {total} layers that learn",
                                               n=fmt_int(learning_in(rows, n)), total=fmt_int(len(learning))),
                       help=t("Layers with weights (convolutions, dense); pooling, activations and BatchNorm "
                              "have nothing that fine-tuning changes."))
        cols[1].metric(t("Trainable parameters"), fmt_int(trainable), help=t("The head's and the unfrozen layers'."))
        cols[2].metric(t("Base parameters"), fmt_int(total))
        training = [rows[i]["name"] for i in learning if rows[i]["trains"]]
        if training:
            st.caption(t("Will learn: {layers}", layers=widgets.plain(", ".join(training))))
        st.dataframe(layer_table(rows), hide_index=True, height=300, key="layer_table",
                     column_config={t("trains"): st.column_config.CheckboxColumn(t("trains"))})


def layer_table(rows: list[dict]):
    """The rows in the reader's language (the note, the headers), those that will train highlighted."""
    table = pd.DataFrame(rows, columns=list(LAYER_COLUMNS))
    table["note"] = [t(note) if note else note for note in table["note"]]
    trains = list(table["trains"])
    table = table.rename(columns={key: t(header) for key, header in LAYER_COLUMNS.items()})
    green = "background-color: rgba(84, 162, 75, 0.18)"
    return table.style.apply(lambda row: [green if trains[row.name] else ""] * len(row), axis=1)


# ---------------------------------------------------------------- before Start

def start_problem(config: TrainConfig, ds) -> str | None:
    """Why these settings cannot start, in one sentence with what to do; None when they can.
    The engine's own check (TrainConfig.resolved), asked before Start rather than after."""
    if ds is None:
        return t("Choose a usable dataset on the Dataset page first.")
    try:
        config.resolved()
    except (ValueError, data.DatasetError) as e:
        return t("These settings cannot be used: {why}", why=i18n.error_text(e))
    return None


def weights_ready(config: TrainConfig) -> bool:
    """True when the base's ImageNet weights are on this machine, or the person agreed to download them
    at Start; otherwise says what is needed (before Start, not as a failed run)."""
    spec = BACKBONES.get(config.base)
    if config.strategy == "scratch" or not config.weights or spec.weights_cached(config.image_size):
        return True
    st.warning(t("{base} needs its ImageNet weights ({file}, {size} MB), which are not on this machine. With "
                 "an internet connection they download at Start; offline, put the file in {folder}, or choose "
                 "a base without “download needed”.", base=spec.label, file=spec.weights_name(config.image_size),
                 size=fmt_num(DOWNLOAD_MB[config.base], 0), folder=widgets.plain(keras_cache_dir())),
               icon=":material/cloud_download:")
    return st.checkbox(t("Download the weights at Start (needs internet)"), key="download_weights")


# Measured rates on this project's 2-core CPU (docs/BENCHMARKS.md), scaled to other bases and sizes by
# their multiply-adds (GFLOPs at 224 px, as published for keras.applications): an estimate, said so.
BENCH_FORWARD_RATE = 27.9  # images/s: MobileNetV2 at 160 px, forward pass (throughput, 2026-11-30, loaded)
BENCH_SCRATCH_RATE = 25.0  # images/s: the small convnet at 150 px, one training step (scratch, 30 epochs ≈ 40 min)
GFLOPS_224 = {"mobilenet_v2": 0.30, "mobilenet": 0.57, "mobilenet_025": 0.04, "vgg16": 15.5, "resnet50": 4.1,
              "efficientnet_b0": 0.39, "xception": 8.4, "inception_v3": 5.7}
SLOW_SECONDS = 15 * 60  # say how slow from a quarter of an hour on


def cpu_seconds(config: TrainConfig, n_train: int, n_val: int, n_classes: int) -> float:
    """Roughly how long the training takes on a 2-core CPU like the benchmarks' (all phases)."""
    c = config.resolved()
    n_train = min(n_train, c.per_class * n_classes) if c.per_class else n_train
    if c.strategy == "scratch":
        return (n_train + n_val) * c.epochs / (BENCH_SCRATCH_RATE * (150 / c.image_size) ** 2)
    scale = GFLOPS_224[c.base] * (c.image_size / 224) ** 2 / (GFLOPS_224["mobilenet_v2"] * (160 / 224) ** 2)
    if c.end_to_end:  # the base on every image of every epoch (a fine-tune step: about three forward passes)
        passes = (n_train + n_val) * (c.epochs + 3 * c.fine_tune_epochs)
    else:  # the base once per image and cached view; the rest trains on cached outputs, in comparison free
        passes = n_train * (c.views if c.augment else 1) + n_val
    return passes * scale / BENCH_FORWARD_RATE


def slow_note(config: TrainConfig, ds) -> str | None:
    """'Slow on a CPU: about 40 hours …' before Start, when a training takes more than a quarter of an hour."""
    try:
        seconds = cpu_seconds(config, len(ds.splits["train"]), len(ds.splits["validation"]), len(ds.classes))
    except (ValueError, KeyError, data.DatasetError):
        return None
    if seconds < SLOW_SECONDS:
        return None
    return t("Slow on a CPU: about {time} on a 2-core CPU (estimated from the rates measured in "
             "docs/BENCHMARKS.md, scaled by the base's computation); a GPU takes minutes.",
             time=rough_duration(seconds))


def rough_duration(seconds: float) -> str:
    """'40 minutes', '30 hours': an estimate's precision."""
    if seconds < 90 * 60:
        return nt("{n} minute", "{n} minutes", round(seconds / 60))
    return nt("{n} hour", "{n} hours", round(seconds / 3600))


def memory_note(ds, size: int) -> str:
    """Where the decoded images will live: in memory within the budget, else read from the files."""
    need = pipeline.decoded_bytes(sum(len(items) for items in ds.splits.values()), size)
    try:
        budget = pipeline.memory_budget()
    except data.DatasetError as e:
        return i18n.error_text(e)
    if need <= budget:
        return t("Decoded at {size} px the images take {need} MB: kept in memory.",
                 size=fmt_int(size), need=fmt_num(need / 1e6, 0))
    return t("Decoded at {size} px the images would take {need} MB, over the memory budget of {budget} MB: "
             "they will be read from the files batch by batch, every epoch ({variable} sets the budget).",
             size=fmt_int(size), need=fmt_num(need / 1e6, 0), budget=fmt_num(budget / 1e6, 0),
             variable=pipeline.BUDGET_ENV)
