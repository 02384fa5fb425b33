"""What the Inspect, Visualize and Predict pages share (and Evaluate's Grad-CAM gallery): the trained
run and its model, the image to look at, and the explanations (cached). The model a page looks at is a
ui.subject.Subject: a trained run or a pretrained ImageNet classifier. Long optimizations with a
progress bar and a Cancel button are ui.long_task's.

Only calls into core/ (runs, data, explain, visualize, adversarial, pretrained): no TensorFlow code here.
Everything cached is keyed on a model reference: `(run folder, time model.keras was saved)` for a run
(a model that a running training saves again is read again, and its explanations are computed again),
`(PRETRAINED, classifier key)` for a pretrained classifier.
"""
from __future__ import annotations

import dataclasses
import functools
import io
import os
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st

import core.jobs
from core import images, pipeline
from core.cam_methods import DEFAULT_CAM_METHOD
from core.jobs import STRATEGY_LABELS
from core.runs import Run, list_runs, model_saved_at
from ui import cache, i18n, results, state, widgets
from ui.i18n import N_, fmt_pct, nt, t
from ui.upload import IMAGE_UPLOAD_MB

if TYPE_CHECKING:
    from ui.subject import Subject

RUN = "inside_run"            # the run Inspect, Visualize and Predict look at: one choice for all three
SOURCE = "inside_source"      # a trained run or a pretrained classifier (ui.subject): one choice for all three
CLASSIFIER = "inside_pretrained"  # which pretrained classifier
PRETRAINED = "pretrained"     # the first item of a pretrained classifier's model reference
INSPECT_IMAGE = "inspect_image"  # Inspect's image picker keys (Evaluate preselects them)
INSPECT_SOURCE = "inspect_source"
INSPECT_MISTAKES = "inspect_mistakes"
UPLOAD_TYPES = sorted(e.lstrip(".") for e in images.IMAGE_EXTENSIONS)
# The split a run was evaluated on, as the image picker offers it and as the run picker scores it.
SPLIT_IMAGES = {"test": N_("The run's test images"), "validation": N_("The run's validation images")}
SPLIT_ACCURACY = {"test": N_("test {accuracy}"), "validation": N_("validation {accuracy}")}
SOURCE_LABELS = {"sample": N_("Sample images"), "dataset_files": N_("The dataset's images"), "upload": N_("Upload one")}
DATASET_LISTED = 500  # images of the current dataset offered to a pretrained classifier


@dataclass(frozen=True)
class Picked:
    """The image the panels look at."""
    image: np.ndarray          # uint8 (S, S, 3) at the run's image size, decoded as training decodes
    name: str
    true: int | None = None    # the true class when the image comes from the run's dataset
    origin: str | bytes | None = None  # its file (path) or uploaded content: to decode it at another size


# ---------------------------------------------------------------- the run and its model

def trained_runs() -> tuple[list[Run], list[Run]]:
    """(runs with a saved model, damaged runs), newest first."""
    runs = list_runs(state.runs_dir(), core.jobs.REGISTRY.active_run_dirs())
    return ([r for r in runs if r.has_model and r.config.get("classes") and not r.damaged],
            [r for r in runs if r.damaged])


def run_picker() -> Run | None:
    """Which trained run to look inside (shared by Inspect, Visualize and Predict)."""
    runs, damaged = trained_runs()
    for run in damaged:
        st.caption(t("Not offered: run {run} is damaged: {why}", run=run.id, why=i18n.tm(run.damaged)))
    if not runs:
        st.info(t("No trained model yet: train one on the Train page, then come back here."))
        return None
    by_id = {r.id: r for r in runs}
    _forget_if_not_in(RUN, by_id)
    state.preselect_run(RUN, by_id)
    pick = st.selectbox(t("Trained run"), list(by_id), key=RUN, persist_state="session",
                        format_func=lambda i: run_label(by_id[i]), on_change=state.picked_run, args=(RUN,))
    state.look_at_run(pick)
    problem = model_problem_of(model_ref(by_id[pick]))
    if problem:
        st.error(problem)
        return None
    return by_id[pick]


def model_problem(run: Run) -> str | None:
    """Why the run's model cannot be loaded (damaged, or code that safe mode refuses); None if it can."""
    return model_problem_of(model_ref(run))


def model_problem_of(ref: tuple) -> str | None:
    """Why this model cannot be loaded (a damaged run, code that safe mode refuses, weights that
    cannot be read); None if it can."""
    from core.backbones import WeightsUnavailable
    from core.runs import ModelUnavailable

    try:
        model(ref)
    except (ModelUnavailable, WeightsUnavailable, OSError, ValueError) as e:
        return i18n.error_text(e)
    return None


def run_label(run: Run) -> str:
    """'20250101-120000-scratch-scratch · From scratch · 48 px · test 83%'."""
    config, metrics = run.config, run.metrics or {}
    strategy = config.get("strategy", "?")
    parts = [run.id, t(STRATEGY_LABELS[strategy]) if strategy in STRATEGY_LABELS else strategy]
    if config.get("base") and config.get("base") != "scratch":
        parts.append(config["base"])
    parts.append(f"{config.get('image_size')} px")
    if metrics.get("accuracy") is not None:  # evaluated_on is checked when the run is read (core.run_schema)
        parts.append(t(SPLIT_ACCURACY[metrics.get("evaluated_on", "test")], accuracy=fmt_pct(metrics["accuracy"], 0)))
    return " · ".join(parts)


def model_ref(run: Run) -> tuple[str, float]:
    """(run folder, modification time of its model.keras): the key of everything cached below."""
    return run.run_dir, model_saved_at(run.run_dir)


def spinning(msgid: str):
    """Show a spinner with this sentence while the function runs (after half a second, so not on
    a quick cache hit), in the language of the session calling it: a cache's own show_spinner text
    is fixed when the module is imported."""
    def decorate(function):
        @functools.wraps(function)
        def run(*args, **kwargs):
            with st.spinner(t(msgid)):
                return function(*args, **kwargs)
        return run
    return decorate


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_model(run_dir: str, saved_at: float):
    from core.runs import load_model

    return load_model(run_dir)


@st.cache_resource(show_spinner=False, max_entries=6)
def _load_pretrained(key: str):
    from core import pretrained

    return pretrained.load(key)


@st.cache_resource(show_spinner=False, max_entries=8)
def _warming(ref: tuple) -> threading.Thread:
    """Once per model and server: load it and trace its first explanations in the background."""
    def work() -> None:
        try:
            cache.training_device()  # one thread imports TensorFlow (see model()); this waits for it
            from core import explain

            explain.warm_up(_load_pretrained(ref[1]) if ref[0] == PRETRAINED else _load_model(*ref))
        except Exception:  # noqa: BLE001  best effort: the page says what is wrong when someone asks
            pass

    thread = threading.Thread(target=work, name="warm-up", daemon=True)
    thread.start()
    return thread


def warm_run(run_dir: str) -> None:
    """warm() for a run folder that has a model (a training that just ended)."""
    from core.runs import has_model

    if has_model(run_dir):
        warm((run_dir, model_saved_at(run_dir)))


def warm(ref: tuple) -> None:
    """Start loading the model and tracing its Grad-CAM as soon as it is chosen, while the person
    picks an image: the first Grad-CAM then takes a fraction of a second instead of seconds."""
    _warming(ref)


@spinning(N_("Loading the model…"))
def model(ref: tuple):
    """The Keras model of a run or of a pretrained classifier, loaded once per server (shared by
    every session)."""
    # TensorFlow is imported by one thread only, behind that cache's lock: imported by two script
    # runs at once (the sidebar of the page just left, and this one), it comes out half-initialized.
    cache.training_device()
    if ref[0] == PRETRAINED:
        return _load_pretrained(ref[1])
    return _load_model(*ref)


@st.cache_data(show_spinner=False, max_entries=16)
def layer_summary(ref: tuple[str, float]) -> tuple[list[dict], int, int]:
    """The model's layers with their output shapes and parameters (model.summary() as rows), and
    (all parameters, the trainable ones)."""
    from core.summary import parameter_counts, summary_rows
    loaded = model(ref)
    return summary_rows(loaded), *parameter_counts(loaded)


def image_size(run: Run) -> tuple[int, str]:
    """(pixels, resize mode) the run was trained with: every image is decoded the same way."""
    return int(run.config["image_size"]), run.config.get("resize", "crop")


# ---------------------------------------------------------------- the image

def image_picker(subject: Subject, key: str) -> Picked | None:
    """The image to look at, at the subject's size: for a run, one of its test (or validation)
    images; for a pretrained classifier, one of the current dataset's; or a sample photo, or an
    uploaded one."""
    records = results.predictions(subject.run) if subject.run else []
    where = (subject.run.metrics or {}).get("evaluated_on", "test") if subject.run else "test"
    labels = {**SOURCE_LABELS, "dataset": SPLIT_IMAGES[where]}
    samples = ["sample"] if demo_images() else []
    if subject.run:
        sources = (["dataset"] if records else []) + ["upload"] + samples
    else:
        sources = samples + ["dataset_files", "upload"]
    _forget_if_not_in(f"{key}_source", sources)
    source = st.radio(t("Image"), sources, format_func=lambda s: t(labels[s]), horizontal=True, key=f"{key}_source")
    if source == "upload":
        return _uploaded(subject, key)
    if source == "sample":
        return _sample(subject, key)
    if source == "dataset_files":
        return _dataset_file(subject, key)
    return _run_record(subject, key, records)


def _run_record(subject: Subject, key: str, records: list[dict]) -> Picked | None:
    """One of the run's evaluated images, optionally only the mistakes."""
    names = list(subject.classes)
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    mistakes = left.toggle(t("Mistakes only"), key=f"{key}_mistakes",
                           help=t("Only the images the model got wrong."))
    shown = [r for r in records if r["true"] != r["pred"]] if mistakes else records
    if not shown:
        right.caption(t("The model got every one of these images right."))
        return None
    by_path = {r["path"]: r for r in shown}
    _forget_if_not_in(f"{key}_image", by_path)
    path = right.selectbox(nt("{n} image", "{n} images", len(shown)), list(by_path), key=f"{key}_image",
                           format_func=lambda p: record_label(by_path[p], names))
    return _file(subject, path, by_path[path]["true"])


def _file(subject: Subject, path: str, true: int | None = None) -> Picked | None:
    """An image file on the server at the subject's size; None (and why) when it cannot be read."""
    try:
        image = run_image(path, subject.size, subject.resize)
    except (ValueError, OSError) as e:
        st.error(t("{path} cannot be read any more: {why}.", path=widgets.plain(path),
                   why=widgets.plain(i18n.error_text(e))))
        return None
    return Picked(image, images.display_name(os.path.basename(path)), true, origin=path)


def _sample(subject: Subject, key: str) -> Picked | None:
    """One of the photos that ship with Transfer Lab (assets/demo)."""
    photos = dict(demo_images())
    _forget_if_not_in(f"{key}_sample", photos)
    name = st.selectbox(t("Sample image"), list(photos), key=f"{key}_sample", format_func=t)
    picked = _file(subject, photos[name])
    return dataclasses.replace(picked, name=t(name)) if picked else None


def _dataset_file(subject: Subject, key: str) -> Picked | None:
    """One image of the dataset chosen on the Dataset page (its class is shown, not used: the
    classifier's classes are not the dataset's)."""
    try:
        dataset = state.current_dataset()
    except ValueError as e:
        st.error(widgets.plain(i18n.error_text(e)))
        return None
    items = [item for split in dataset.splits.values() for item in split][:DATASET_LISTED]
    if not items:
        st.caption(t("The dataset has no images."))
        return None
    by_path = dict(items)
    _forget_if_not_in(f"{key}_dataset_image", by_path)
    path = st.selectbox(nt("{n} image", "{n} images", len(items)), list(by_path), key=f"{key}_dataset_image",
                        format_func=lambda p: t("{image} — {true}", image=images.display_name(os.path.basename(p)),
                                                true=dataset.classes[by_path[p]]))
    return _file(subject, path)


@st.cache_data(show_spinner=False)
def demo_images() -> list[tuple[str, str]]:
    """[(name, path)] of the sample photos."""
    from core import pretrained

    return list(pretrained.demo_images())


def _uploaded(subject: Subject, key: str) -> Picked | None:
    upload = st.file_uploader(t("An image file"), type=UPLOAD_TYPES, key=f"{key}_upload",
                              max_upload_size=IMAGE_UPLOAD_MB)
    if upload is None:
        st.caption(t("Choose a photo: it is cropped and resized the way this run's training images were.")
                   if subject.run else t("Choose a photo: it is cropped to a square and resized to the "
                                         "classifier's input."))
        return None
    content = upload.getvalue()
    try:
        return Picked(images.load_image(io.BytesIO(content), subject.size, subject.resize), upload.name,
                      origin=content)
    except ValueError as e:
        st.error(t("{name} cannot be used: {why}.", name=widgets.plain(upload.name),
                   why=widgets.plain(i18n.error_text(e))))
        return None


def picked_at(picked: Picked, size: int, resize: str) -> np.ndarray:
    """The picked image decoded again at another model's size (raises ValueError / OSError)."""
    if picked.image.shape[0] == size or picked.origin is None:
        return picked.image
    if isinstance(picked.origin, bytes):
        return images.load_image(io.BytesIO(picked.origin), size, resize)
    return run_image(picked.origin, size, resize)


def record_label(record: dict, names: list[str]) -> str:
    """'cat.1503.jpg — cats ✓' or 'dog.1520.jpg — dogs, predicted cats ✗'."""
    image, true = images.display_name(os.path.basename(record["path"])), names[record["true"]]
    if record["true"] == record["pred"]:
        return t("{image} — {true} ✓", image=image, true=true)
    return t("{image} — {true}, predicted {predicted} ✗", image=image, true=true, predicted=names[record["pred"]])


def run_image(path: str, size: int, resize: str) -> np.ndarray:
    """One dataset image decoded as training decoded it (raises ValueError / OSError)."""
    return _run_image(os.fsencode(path), size, resize)  # bytes: the cache cannot hash a name that is not UTF-8


@st.cache_data(show_spinner=False, max_entries=256)
def _run_image(path: bytes, size: int, resize: str) -> np.ndarray:
    path = os.fsdecode(path)
    return images.load_image(path, size, resize)


def _forget_if_not_in(key: str, options) -> None:
    """Drop a remembered widget value that is not an option any more (another run, another filter)."""
    if key in st.session_state and st.session_state[key] not in options:
        del st.session_state[key]


def open_in_inspect(run: Run, path: str) -> None:
    """Show this run and this image on the Inspect page."""
    st.session_state[SOURCE] = "run"
    st.session_state[RUN] = run.id
    state.look_at_run(run.id)
    st.session_state[INSPECT_SOURCE] = "dataset"
    st.session_state[INSPECT_MISTAKES] = False
    st.session_state[INSPECT_IMAGE] = path
    st.switch_page("app_pages/inspect.py")


def grad_cam_image(run: Run, path: str) -> np.ndarray | None:
    """A dataset image with the Grad-CAM of its predicted class on top (Evaluate's gallery)."""
    return grad_cam_thumbnail(model_ref(run), os.fsencode(path), *image_size(run))


def inspect_link(run: Run, paths: list[str]) -> None:
    """Choose one of these images and open it on the Inspect page."""
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    path = left.selectbox(t("Look inside the model for one of these images"), paths, key="eval_inspect_image",
                          format_func=lambda p: images.display_name(os.path.basename(p)))
    if right.button(t("Open in Inspect"), key="eval_open_inspect", icon=":material/center_focus_strong:"):
        open_in_inspect(run, path)


# ---------------------------------------------------------------- explanations, cached

@st.cache_data(show_spinner=False, max_entries=256)
def probabilities(ref, image: np.ndarray) -> np.ndarray:
    from core import explain

    return explain.probabilities(model(ref), image)


def top_indices(probs, k: int) -> list[int]:
    """The k most probable classes, most probable first."""
    return [int(i) for i in np.argsort(np.asarray(probs))[::-1][:k]]


@st.cache_data(show_spinner=False, max_entries=16)
def feature_layers(ref) -> list[str]:
    """The layers with feature maps, bottom to top (core.explain.conv_layers)."""
    from core import explain

    return explain.conv_layers(model(ref))


@st.cache_data(show_spinner=False, max_entries=16)
def last_feature_layer(ref) -> str:
    from core import explain

    return explain.last_conv_layer(model(ref))


@spinning(N_("Computing the feature maps…"))
@st.cache_data(show_spinner=False, max_entries=32)
def activations(ref, image: np.ndarray, layer: str) -> np.ndarray:
    from core import explain

    return explain.activations(model(ref), image, layer)


@spinning(N_("Computing Grad-CAM…"))
@st.cache_data(show_spinner=False, max_entries=128)
def grad_cam(ref, image: np.ndarray, class_index: int | None, layer: str | None,
             method: str = DEFAULT_CAM_METHOD):
    """(heatmap 0..1 at the layer's resolution, explained class, probabilities)."""
    from core import explain

    return explain.grad_cam(model(ref), image, class_index, layer, method)


def cam_overlay(image: np.ndarray, heat: np.ndarray, opacity: float = 0.4) -> np.ndarray:
    from core import explain

    return explain.overlay(image, heat, opacity)


def feature_grid(acts: np.ndarray, n: int, cols: int, scale: int) -> np.ndarray:
    """core.explain.feature_grid, imported when first drawn (core.explain imports TensorFlow)."""
    from core import explain

    return explain.feature_grid(acts, n, cols=cols, scale=scale)


@st.cache_data(show_spinner=False, max_entries=512)
def grad_cam_thumbnail(ref, path: bytes, size: int, resize: str) -> np.ndarray | None:
    """A dataset image (os.fsencode'd path) with the Grad-CAM of its predicted class on top; None if it cannot be read."""
    try:
        image = _run_image(path, size, resize)
    except (ValueError, OSError):
        return None
    heat, _, _ = grad_cam(ref, image, None, None)
    return cam_overlay(image, heat)


@spinning(N_("Attacking the image…"))
@st.cache_data(show_spinner=False, max_entries=64)
def attack(ref, image: np.ndarray, method: str, label: int, epsilon: float, target: int | None = None,
           steps: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """(adversarial float image 0..255, its probabilities) by FGSM (away from `label`) or the
    iterative targeted attack (towards `target`)."""
    from core import adversarial

    m = model(ref)
    if method == "fgsm":
        adv = adversarial.fgsm(m, image[None], [label], epsilon)[0]
        return adv, probabilities(ref, adv)
    return adversarial.targeted_attack(m, image, target, epsilon, steps=steps)


@st.cache_data(show_spinner=False, max_entries=256)
def layer_channels(ref, layer: str) -> int:
    return int(model(ref).get_layer(layer).output.shape[-1])


def planned_steps(steps: int) -> int:
    """The steps an optimization will really take (TRANSFERLAB_MAX_STEPS caps them in tests)."""
    from core.visualize import capped_steps

    return capped_steps(steps)


def filter_pattern(ref, layer: str, index: int, steps: int, on_step=None):
    """The input that excites one filter most, a core.visualize.Maximized (not cached: it reports
    to on_step(step, steps, image, value) as it goes)."""
    from core import visualize

    return visualize.filter_pattern(model(ref), layer, index, steps=steps, on_step=on_step)


def ideal_class_image(ref, class_index: int, steps: int, on_step=None, *, lr: float = 6.0, tv_weight: float = 0.3,
                      jitter: int = 8, l2_weight: float = 0.0):
    """What the model thinks the class looks like, a core.visualize.Maximized (its value: the
    class's probability on the image), reporting to on_step(step, steps, image, probability). The
    regularization: total variation and L2 weights, jitter in pixels (all 0: plain gradient ascent)."""
    from core import visualize

    return visualize.ideal_class_image(model(ref), class_index, steps=steps, on_step=on_step, lr=lr,
                                       tv_weight=tv_weight, jitter=jitter, l2_weight=l2_weight)


def roughness(image: np.ndarray) -> float:
    """core.visualize.total_variation: 0 for a flat image, higher the noisier."""
    from core import visualize

    return visualize.total_variation(image)


def accuracy_vs_epsilon(ref, images: np.ndarray, labels: np.ndarray, epsilons, on_step=None,
                        batch_size: int = 16) -> list[tuple[float, float]]:
    """[(epsilon, accuracy under FGSM)], reporting to on_step(batches done, batches)."""
    from core import adversarial

    return adversarial.accuracy_vs_epsilon(model(ref), images, labels, epsilons, batch_size=batch_size,
                                           on_step=on_step)


def perturbation(image: np.ndarray, attacked: np.ndarray) -> np.ndarray:
    from core import adversarial

    return adversarial.perturbation_image(image, attacked)


def test_sample(run: Run, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random sample of n images of the run's evaluated split (images, true labels)."""
    records = results.predictions(run)
    order = np.random.default_rng(seed).permutation(len(records))[:n]
    items = [(records[i]["path"], records[i]["true"]) for i in sorted(order)]
    size, resize = image_size(run)
    images, labels, _ = pipeline.load_arrays(items, size, resize=resize)
    return images, labels


# ---------------------------------------------------------------- teaching

def panel(title: str, text: str) -> None:
    """A panel's heading and its two sentences: what the user sees, and why it matters."""
    st.subheader(title)
    st.markdown(text)
