"""The Train page's form: every setting of one training, the base's layers, and why Start cannot run yet.

Widgets keep their values in st.session_state (persist_state="session": switching pages loses
nothing). The page reads one TrainConfig from `settings(ds)` and asks `start_problem` before Start.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core import data, pipeline, weights
from core.backbones import BACKBONES
from core.jobs import DEFAULT_DROPOUT, DEFAULT_EPOCHS, DEFAULT_FINE_TUNE_EPOCHS, DEFAULT_LEARNING_RATE, DEFAULTS, \
    OPTIMIZERS, SCRATCH_MIN_SIZE, STRATEGIES, STRATEGY_LABELS, TrainConfig
from ui import cache, i18n, state, widgets
from ui.i18n import N_, fmt_int, fmt_num, t

STRATEGY_HELP = {
    "scratch": N_("A small convnet learns everything from your images (rungs 1–2 of the ladder)."),
    "feature-extraction": N_("A network pretrained on ImageNet stays frozen; only a new head learns (rung 3)."),
    "fine-tune": N_("The head first, then the top layers of the base too, at a low learning rate (rung 4)."),
}
# The layer table's columns (core.models.layer_table's keys) as the user reads them.
LAYER_COLUMNS = {"from_top": "#", "name": N_("name"), "type": N_("type"), "params": N_("params"),
                 "trains": N_("trains"), "note": N_("note")}
BATCH_SIZES = [8, 16, 32, 64, 128]
LEARNING_RATES = [1e-5, 2e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2]
MAX_IMAGE_SIZE = 1024
SESSION = "session"  # persist_state: the settings survive page switches
AUGMENT_TOUCHED = "augment_touched"  # the person switched augmentation on the Train page itself
UNFREEZE_PRESETS = "unfreeze_presets"  # base -> the layer count a recipe unfreezes (else the base's default)


def strategy_label(strategy: str) -> str:
    return t(STRATEGY_LABELS[strategy])


def settings(ds) -> TrainConfig:
    """Every setting of one training: the strategy, then four columns."""
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
    val_fraction, test_fraction, _ = state.split_settings()
    return TrainConfig(data=state.dataset_path(), strategy=strategy, augment_config=state.augment_config().to_dict(),
                       val_fraction=val_fraction, test_fraction=test_fraction, runs_dir=state.runs_dir(), **chosen)


def base_label(base: str, image_size: int) -> str:
    """'VGG16 — download needed (59 MB, internet)' for a base whose weights are not on this machine."""
    label = BACKBONES[base].label
    if weights.weights_available(base, image_size):
        return label
    return t("{base} — download needed ({size} MB, internet)", base=label,
             size=fmt_num(weights.DOWNLOAD_MB[base], 0))


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
                             key=f"dropout_{strategy}", persist_state=SESSION),
    }


def optimizer_settings(strategy: str) -> dict:
    """The optimizer and its learning rates (a low one for fine-tuning, as the references insist)."""
    return {
        "optimizer": st.selectbox(t("Optimizer"), OPTIMIZERS, key="optimizer", persist_state=SESSION),
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


def base_layers_table(config: TrainConfig, num_classes: int) -> None:
    """The base's layers, top first, with those that will train highlighted."""
    n = config.unfreeze if config.strategy == "fine-tune" else 0
    rows, trainable = cache.base_layers(config.base, num_classes, n)
    total = sum(r["params"] for r in rows)
    label = BACKBONES[config.base].label
    learning = learning_layers(rows)
    with st.expander(t("{base}: {layers} layers ({learning} with weights that can learn) · {params} trainable "
                       "parameters", base=label, layers=fmt_int(len(rows)), learning=fmt_int(len(learning)),
                       params=fmt_int(trainable)),
                     expanded=config.strategy == "fine-tune"):
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
    """Why these settings cannot start, in one sentence with what to do; None when they can."""
    if ds is None:
        return t("Choose a usable dataset on the Dataset page first.")
    if config.strategy == "scratch":
        if config.image_size < SCRATCH_MIN_SIZE:
            return t("The scratch convnet needs images of at least {size} px (four conv + pool stages).",
                     size=SCRATCH_MIN_SIZE)
        return None
    problem = BACKBONES[config.base].size_problem(config.image_size)
    return i18n.tm(problem) if problem else None


def weights_ready(config: TrainConfig) -> bool:
    """True when the base's ImageNet weights are on this machine, or the person agreed to download them
    at Start; otherwise says what is needed (before Start, not as a failed run)."""
    if config.strategy == "scratch" or not config.weights or weights.weights_available(config.base,
                                                                                       config.image_size):
        return True
    st.warning(t("{base} needs its ImageNet weights ({file}, {size} MB), which are not on this machine. With "
                 "an internet connection they download at Start; offline, put the file in {folder}, or choose "
                 "a base without “download needed”.", base=BACKBONES[config.base].label,
                 file=weights.weights_file(config.base, config.image_size),
                 size=fmt_num(weights.DOWNLOAD_MB[config.base], 0), folder=widgets.plain(weights.keras_cache_dir())),
               icon=":material/cloud_download:")
    return st.checkbox(t("Download the weights at Start (needs internet)"), key="download_weights")


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
