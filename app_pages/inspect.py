"""Inspect: one image through a trained model or a pretrained ImageNet classifier: what it predicts,
what its layers see, where it looks."""
from __future__ import annotations

import math

import streamlit as st

from core.cam_methods import CAM_METHODS
from ui import inside, inside_charts, widgets
from ui import subject as subjects
from ui.i18n import fmt_int, fmt_pct, t

GRID_COLUMNS = 8
MIN_TILE = 48  # px: late layers are a few pixels wide, so their tiles are enlarged to at least this
TOP = 5  # classes charted out of a pretrained classifier's 1,000


def main() -> None:
    widgets.page_intro(t("Inspect"), t(
        "A trained network is not a black box: every layer is a stack of images (feature maps) you can "
        "look at, and the gradient of a class score tells which parts of the photo that score depends on. "
        "Choose a trained run or a pretrained ImageNet classifier, then an image: one of the run's test "
        "images, a sample photo or one of yours."), page="inspect")
    subject = subjects.picker()
    if subject is None:
        return
    picked = inside.image_picker(subject, "inspect")
    if picked is None:
        return
    names = list(subject.classes)
    probs = inside.probabilities(subject.ref, picked.image)
    probabilities_panel(picked, probs, names)
    activations_panel(subject, picked)
    grad_cam_panel(subject, picked, probs, names)


def probabilities_panel(picked: inside.Picked, probs, names: list[str]) -> None:
    """The image as the model sees it, and the probability it gives each class."""
    inside.panel(t("Class probabilities"), t(
        "The last layer turns everything the network computed into one probability per class; the "
        "prediction is the longest bar. A confident wrong answer is more worrying than a hesitant one, "
        "and the panels below show what it rests on."))
    left, right = st.columns([1, 3], gap="large")
    left.image(picked.image, caption=prediction_caption(picked, probs, names), width="stretch")
    if len(names) <= TOP:
        right.plotly_chart(inside_charts.class_probabilities(probs, names, picked.true), key="inspect_probs")
        return
    top = inside.top_indices(probs, TOP)
    right.plotly_chart(inside_charts.class_probabilities(probs[top], [names[i] for i in top]), key="inspect_probs")
    right.caption(t("The {top} most probable of {n} classes.", top=fmt_int(TOP), n=fmt_int(len(names))))


def prediction_caption(picked: inside.Picked, probs, names: list[str]) -> str:
    """'cat.12.jpg: cats 97.8%', with ✓ or ✗ (and the true class) when the truth is known."""
    pred = int(probs.argmax())
    shown = {"image": widgets.plain(picked.name), "predicted": widgets.plain(names[pred]),
             "probability": fmt_pct(probs[pred])}
    if picked.true is None:
        return t("{image}: {predicted} {probability}", **shown)
    if picked.true == pred:
        return t("{image}: {predicted} {probability} ✓", **shown)
    return t("{image}: {predicted} {probability} ✗ (true: {true})", true=widgets.plain(names[picked.true]), **shown)


def activations_panel(subject: subjects.Subject, picked: inside.Picked) -> None:
    """A grid of one layer's feature maps, first N channels."""
    inside.panel(t("Intermediate activations"), t(
        "Each tile is one channel of the chosen layer, bright where the filter behind it responds to "
        "this image. Early layers keep edges, colours and textures you can still recognise, while deeper "
        "ones are smaller, more abstract and often dark, because they record whether parts of a class "
        "are present rather than the image itself."))
    ref = subject.ref
    layers = inside.feature_layers(ref)
    left, right = st.columns(2)
    layer = left.selectbox(t("Layer (bottom to top)"), layers, key=f"inspect_act_layer_{subject.id}",
                           format_func=lambda n: f"{layers.index(n) + 1}. {n}")
    acts = inside.activations(ref, picked.image, layer)
    h, w, channels = acts.shape
    n = right.slider(t("Channels shown (the first N)"), 1, channels, min(32, channels),
                     key=f"inspect_act_n_{subject.id}_{layer}")
    grid = inside.feature_grid(acts, n, cols=min(GRID_COLUMNS, n), scale=max(1, math.ceil(MIN_TILE / h)))
    st.image(grid, width="stretch", caption=t(
        "{layer}: {h}×{w} pixels, {channels} channels — the first {n}, each normalized on its own "
        "(flat gray: the channel is silent on this image)",
        layer=layer, h=fmt_int(h), w=fmt_int(w), channels=fmt_int(channels), n=fmt_int(n)))


def grad_cam_panel(subject: subjects.Subject, picked: inside.Picked, probs, names: list[str]) -> None:
    """Grad-CAM of the predicted (or a chosen) class, over the image."""
    inside.panel(t("Where the model looks (Grad-CAM)"), t(
        "The heat marks the parts of the image that raise the chosen class's score the most: the "
        "gradient of that score weighs each channel of a convolutional layer, and their weighted sum is "
        "laid over the photo. This is where a model that is right for the wrong reason (the background, "
        "a watermark, the grass under every dog) gives itself away."))
    ref = subject.ref
    layers = inside.feature_layers(ref)
    last = inside.last_feature_layer(ref)
    pred = int(probs.argmax())
    cols = st.columns(4)
    choice = cols[0].selectbox(t("Class to explain"), [-1, *range(len(names))], key=f"inspect_cam_class_{subject.id}",
                               format_func=lambda i: t("the predicted class ({name})", name=names[pred])
                               if i < 0 else names[i],
                               help=t("Type to search: any of the {n} classes can be explained, not only the "
                                      "predicted one.", n=fmt_int(len(names))))
    layer = cols[1].selectbox(t("Layer"), layers, index=layers.index(last), key=f"inspect_cam_layer_{subject.id}",
                              help=t("By default the last layer with feature maps: the most semantic, if coarse."))
    method = cols[2].selectbox(t("Method"), list(CAM_METHODS), key="inspect_cam_method",
                               format_func=lambda m: t(CAM_METHODS[m].label),
                               help=" ".join(t("{method} {description}", method=t(m.label), description=t(m.description))
                                             for m in CAM_METHODS.values()))
    opacity = cols[3].slider(t("Opacity of the heatmap"), 0.0, 1.0, 0.45, step=0.05, key="inspect_cam_opacity")
    heat, explained, _ = inside.grad_cam(ref, picked.image, None if choice < 0 else choice, layer, method)
    left, right = st.columns(2)
    left.image(picked.image, caption=t("the image"), width="stretch")
    right.image(inside.cam_overlay(picked.image, heat, opacity), width="stretch", caption=t(
        "evidence for {name} ({probability}) at {layer}, {method}, {rows}×{cols} cells",
        name=widgets.plain(names[explained]), probability=fmt_pct(probs[explained]), layer=layer,
        method=t(CAM_METHODS[method].label), rows=fmt_int(heat.shape[0]), cols=fmt_int(heat.shape[1])))
    if not heat.any():
        st.caption(t("Nothing in {layer} speaks for {name} on this image: the map is empty.",
                     layer=layer, name=widgets.plain(names[explained])))


main()
