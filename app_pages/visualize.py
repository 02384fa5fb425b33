"""Visualize: inputs made by gradient ascent (filter patterns, "ideal" class images) and inputs that
fool the model (adversarial examples), for a trained run or a pretrained ImageNet classifier."""
from __future__ import annotations

import numpy as np
import streamlit as st

from ui import glossary, inside, inside_charts, results, widgets
from ui import subject as subjects
from ui.i18n import N_, fmt_int, fmt_num, fmt_pct, nt, t
from ui.long_task import LongTask

EPSILON_CURVE = [0, 0.5, 1, 2, 4, 8, 16]  # pixel levels (x / 255) measured for the accuracy chart
SHOW_SIZE = 320  # px: optimized images are shown at this width, whatever the model's input size
SHOW_EVERY = 10  # steps: the ideal image is redrawn this often while it grows
ATTACK_BATCH = 16  # images per batch of the accuracy measurement: the progress bar moves once a batch
ATTACKS = {"fgsm": N_("FGSM (one step)"), "targeted": N_("Targeted (iterative)")}
TOP = 5  # classes per prediction in the attack's chart when the model has many
# core.visualize.ideal_class_image's regularization (the sliders start here), and none at all.
REGULARIZATION = {"tv_weight": 0.3, "jitter": 8, "l2_weight": 0.0}
NO_REGULARIZATION = {"tv_weight": 0.0, "jitter": 0, "l2_weight": 0.0}


def main() -> None:
    widgets.page_intro(t("Visualize"), t(
        "Here the image is not given, it is computed: gradient ascent changes the pixels themselves, "
        "either to excite one part of the network or to fool it. The optimizations take from seconds to "
        "a minute on a CPU; each shows its progress and can be cancelled."), page="visualize")
    subject = subjects.picker()
    if subject is None:
        return
    filter_tab, ideal_tab, attack_tab = st.tabs([t("Filter patterns"), t("Ideal class image"),
                                                   t("Adversarial examples")])
    with filter_tab:
        filter_patterns_panel(subject)
    with ideal_tab:
        ideal_class_panel(subject)
    with attack_tab:
        adversarial_panel(subject)
        if subject.run:  # a pretrained classifier has no test split of its own to sample
            accuracy_panel(subject)


def filter_patterns_panel(subject: subjects.Subject) -> None:
    """The inputs that excite the first N filters of a layer most, as a grid."""
    inside.panel(t("Filter patterns"), t(
        "Each image is grown from gray noise by gradient ascent until one filter of the chosen layer "
        "responds to it as strongly as it can: it is the pattern that filter detects. Low layers detect "
        "edges and colours, higher ones textures and then motifs, which is why a network can be reused "
        "for photos it never saw."))
    ref = subject.ref
    layers = inside.feature_layers(ref)
    cols = st.columns(3)
    layer = cols[0].selectbox(t("Layer (bottom to top)"), layers, index=len(layers) // 2,
                              key=f"vis_filter_layer_{subject.id}", format_func=lambda n: f"{layers.index(n) + 1}. {n}")
    channels = inside.layer_channels(ref, layer)
    n = cols[1].slider(t("Filters (the first N)"), 1, min(64, channels), min(8, channels), key="vis_filter_n")
    steps = cols[2].slider(t("Steps per filter"), 5, 100, 30, step=5, key="vis_filter_steps")
    task = LongTask("vis_filter", t("Draw the patterns"), subject={"run": subject.id})
    if task.started:
        task.work.update(layer=layer, n=n, images=[])
        total = n * inside.planned_steps(steps)
        for i in range(n):
            def on_step(step, per_filter, image, value, i=i):
                done = i * per_filter + step
                task.progress(done / total, t("filter {i} of {n}, step {step} of {steps}", i=fmt_int(i + 1),
                                              n=fmt_int(n), step=fmt_int(done), steps=fmt_int(total)))

            task.work["images"].append(inside.filter_pattern(ref, layer, i, steps, on_step).image)
            with task.view.container():
                show_patterns(task.work)
        task.done()
    if task.work and task.work.get("images"):
        with task.view.container():
            show_patterns(task.work)


def show_patterns(work: dict) -> None:
    images = work["images"]
    st.caption(patterns_status(work))
    widgets.image_grid(images, [t("filter {i}", i=i) for i in range(len(images))], columns=8)


def patterns_status(work: dict) -> str:
    """'Layer conv2: 8 filters in 12 s.', or how far it got."""
    done, layer = len(work["images"]), work["layer"]
    if work["status"] == "done":
        return nt("Layer {layer}: {n} filter in {seconds} s.", "Layer {layer}: {n} filters in {seconds} s.", done,
                  layer=layer, seconds=fmt_num(work.get("seconds", 0), 0))
    sentence = {"cancelled": N_("Layer {layer}: cancelled after {done} of {n} filters."),
                "interrupted": N_("Layer {layer}: stopped after {done} of {n} filters (the page was changed)."),
                "running": N_("Layer {layer}: {done} of {n} filters.")}[work["status"]]
    return t(sentence, layer=layer, done=fmt_int(done), n=fmt_int(work["n"]))


def ideal_class_panel(subject: subjects.Subject) -> None:
    """Activation maximization of one class, shown as it evolves; optionally beside the same ascent
    without regularization."""
    inside.panel(t("\"Ideal\" class image"), t(
        "Starting from noise, the pixels are pushed to raise the chosen class's score, with a little "
        "random shifting (jitter) and a smoothness penalty (total variation) so that the result looks "
        "like an image and not like static. What comes out is what the model has learned to look for: "
        "fur textures and eyes for a cat, rarely a whole cat."))
    names = list(subject.classes)
    cols = st.columns(2)
    target = cols[0].selectbox(t("Class"), range(len(names)), format_func=names.__getitem__,
                               index=subjects.default_class(subject), key=f"vis_ideal_class_{subject.id}")
    steps = cols[1].slider(t("Steps"), 20, 500, 150, step=10, key="vis_ideal_steps")
    settings, compare = regularization_controls(subject)
    task = LongTask("vis_ideal", t("Draw the ideal image"), subject={"run": subject.id, "target": target})
    if task.started:
        work = task.work
        total = inside.planned_steps(steps)
        work.update(total=total, points=[], settings=settings, plain=None)
        passes = [settings] + ([{**settings, **NO_REGULARIZATION}] if compare else [])
        for n, regularization in enumerate(passes):
            def on_step(step: int, total: int, image: np.ndarray, probability: float, n=n) -> None:
                if step % SHOW_EVERY and step != total:
                    return
                if n == 0:
                    work.update(step=step, image=image, probability=probability)
                    work["points"].append({"step": step, "probability": probability})
                else:
                    work["plain"] = {"image": image, "probability": probability}
                task.progress((n * total + step) / (len(passes) * total), t(
                    "step {step} of {total}: p({name}) = {probability}", step=fmt_int(step), total=fmt_int(total),
                    name=names[target], probability=fmt_pct(probability)), force=True)
                task.view.image(image, caption=t("step {step}", step=fmt_int(step)), width=SHOW_SIZE)

            result = inside.ideal_class_image(subject.ref, target, steps, on_step, **regularization)
            if n == 0:
                work.update(image=result.image, probability=result.value,
                            points=[{"step": h["step"], "probability": h["value"]} for h in result.history])
            else:
                work["plain"] = {"image": result.image, "probability": result.value}
        task.done()
    if task.work and task.work.get("image") is not None:
        with task.view.container():
            show_ideal(task.work, names)


def regularization_controls(subject: subjects.Subject) -> tuple[dict, bool]:
    """(core.visualize.ideal_class_image's lr, tv_weight, jitter and l2_weight; whether to draw the same
    ascent without regularization beside it)."""
    with st.expander(t("Regularization"), expanded=subject.pretrained):
        st.caption(t("Plain gradient ascent gives high-frequency noise that the model nevertheless takes "
                     "for the class; smoothness and jitter turn it into something that looks like an image."))
        plain = st.toggle(t("No regularization (plain gradient ascent)"), key="vis_ideal_plain")
        cols = st.columns(4)
        tv = cols[0].slider(t("Total variation weight"), 0.0, 2.0, REGULARIZATION["tv_weight"], step=0.05,
                            key="vis_ideal_tv", disabled=plain, help=t("Smoothness: how much neighbouring pixels "
                                                                       "are pulled together."))
        jitter = cols[1].slider(t("Jitter (pixels)"), 0, 32, REGULARIZATION["jitter"], key="vis_ideal_jitter",
                                disabled=plain, help=t("A random shift before every step, so that the image must "
                                                       "work at many offsets."))
        l2 = cols[2].slider(t("L2 weight"), 0.0, 1.0, REGULARIZATION["l2_weight"], step=0.01, key="vis_ideal_l2",
                            disabled=plain, help=t("Pulls every pixel towards gray, so that colours do not saturate."))
        lr = cols[3].slider(t("Learning rate"), 1.0, 20.0, 6.0, step=0.5, key="vis_ideal_lr",
                            help=t("How far the pixels move at each step (in pixel levels)."))
        # One toggle per kind of model: its default (on for a pretrained classifier) holds even when the
        # page was first opened on a run.
        compare = st.toggle(t("Also draw it without regularization, side by side"),
                            key="vis_ideal_compare_" + ("pretrained" if subject.pretrained else "run"),
                            value=subject.pretrained, disabled=plain)
    regularization = NO_REGULARIZATION if plain else {"tv_weight": tv, "jitter": jitter, "l2_weight": l2}
    return {"lr": lr, **regularization}, compare and not plain


def show_ideal(work: dict, names: list[str]) -> None:
    name = names[work["target"]]
    plain = work.get("plain")
    cols = st.columns([1, 1, 2] if plain else [1, 2], gap="large")
    shown = {"name": widgets.plain(name), "probability": fmt_pct(work["probability"]), "total": fmt_int(work["total"])}
    if work["status"] == "done":
        caption = t("the ideal {name}: the model gives it {probability} after {total} steps ({seconds} s)",
                    seconds=fmt_num(work["seconds"], 0), **shown)
    elif work["status"] == "cancelled":
        caption = t("cancelled at step {step} of {total}: p({name}) = {probability}", step=fmt_int(work["step"]), **shown)
    else:
        caption = t("stopped (the page was changed) at step {step} of {total}: p({name}) = {probability}",
                    step=fmt_int(work["step"]), **shown)
    cols[0].image(work["image"], width="stretch", caption=caption)
    settings = work.get("settings")
    if settings:
        cols[0].caption(t("Total variation {tv}, jitter {jitter} px, L2 {l2}, learning rate {lr}; roughness of the "
                          "result {roughness}.", tv=fmt_num(settings["tv_weight"], 2), jitter=fmt_int(settings["jitter"]),
                          l2=fmt_num(settings["l2_weight"], 2), lr=fmt_num(settings["lr"], 1),
                          roughness=fmt_num(inside.roughness(work["image"]), 4)))
    if plain:
        cols[1].image(plain["image"], width="stretch", caption=t(
            "without regularization: p({name}) = {probability}, roughness {roughness}", name=widgets.plain(name),
            probability=fmt_pct(plain["probability"]), roughness=fmt_num(inside.roughness(plain["image"]), 4)))
    cols[-1].plotly_chart(inside_charts.probability_by_step(work["points"], name), key="vis_ideal_curve")


def adversarial_panel(subject: subjects.Subject) -> None:
    """FGSM or the targeted attack on one image: original, perturbation, result, both predictions."""
    inside.panel(t("Adversarial examples"), t(
        "A change of a pixel level or two, far below what you can see, chosen along the gradient of the "
        "loss, is enough to change the prediction: FGSM takes one such step away from the true class, "
        "the targeted attack takes several towards a class you choose. A model can be accurate and "
        "still rely on features no person would."))
    ref, names = subject.ref, list(subject.classes)
    picked = inside.image_picker(subject, "adv")
    if picked is None:
        return
    probs = inside.probabilities(ref, picked.image)
    pred = int(probs.argmax())
    cols = st.columns(3)
    method = cols[0].radio(t("Attack"), list(ATTACKS), key="vis_adv_method", horizontal=True,
                           format_func=lambda m: t(ATTACKS[m]), help=glossary.help_of("fgsm"))
    levels = cols[1].slider(t("Epsilon (pixel levels out of 255)"), 0.5, 16.0, 2.0, step=0.5, key="vis_adv_eps",
                            help=t("The most any pixel may change, in levels of the 0..255 range."))
    target, steps = None, 10
    if method == "targeted":
        others = [i for i in range(len(names)) if i != pred] or [pred]
        wanted = subjects.default_class(subject)
        target = cols[2].selectbox(t("Target class"), others, format_func=names.__getitem__,
                                   index=others.index(wanted) if wanted in others else 0,
                                   key=f"vis_adv_target_{subject.id}")
        steps = cols[2].slider(t("Steps"), 1, 50, 10, key="vis_adv_steps")
    label = picked.true if picked.true is not None else pred  # an upload: attack the model's own answer
    adversarial, adv_probs = inside.attack(ref, picked.image, method, label, levels / 255, target, steps)
    show_attack(picked, probs, adversarial, adv_probs, names, levels, target,
                1 if target is None else inside.planned_steps(steps))


def show_attack(picked: inside.Picked, probs, adversarial, adv_probs, names, levels: float, target,
                steps: int) -> None:
    pred, adv_pred = int(probs.argmax()), int(np.argmax(adv_probs))
    peak = float(np.abs(adversarial - picked.image.astype(np.float32)).max())
    shown = [widgets.plain(name) for name in names]
    cols = st.columns(3)
    cols[0].image(picked.image, width="stretch",
                  caption=t("original: {name} {probability}", name=shown[pred], probability=fmt_pct(probs[pred])))
    cols[1].image(inside.perturbation(picked.image, adversarial), width="stretch",
                  caption=t("the perturbation, amplified ×{factor} (gray: unchanged)", factor=fmt_num(127.5 / peak, 0))
                  if peak else t("no pixel changed (the gradient is zero)"))
    cols[2].image(np.uint8(np.round(adversarial)), width="stretch",
                  caption=t("adversarial (±{levels}/255): {name} {probability}", levels=fmt_num(levels, 1),
                            name=shown[adv_pred], probability=fmt_pct(adv_probs[adv_pred])))
    st.caption(nt("ε = {levels}/255 (the most any pixel may change), {n} step; the largest change of a pixel is "
                  "{peak} levels.", "ε = {levels}/255 (the most any pixel may change), {n} steps; the largest "
                  "change of a pixel is {peak} levels.", steps, levels=fmt_num(levels, 1), peak=fmt_num(peak, 1)))
    if target is not None:
        sentence = (N_("Target **{name}** reached — p({name}) went from {before} to {after}.") if adv_pred == target
                    else N_("Target **{name}** not reached: raise epsilon or the steps — p({name}) went from "
                            "{before} to {after}."))
        st.markdown(t(sentence, name=shown[target], before=fmt_pct(probs[target]), after=fmt_pct(adv_probs[target])))
    else:
        sentence = (N_("Prediction **changed**: {before_name} {before} → {after_name} {after}.") if adv_pred != pred
                    else N_("Prediction **unchanged**: {before_name} {before} → {after_name} {after}."))
        st.markdown(t(sentence, before_name=shown[pred], before=fmt_pct(probs[pred]), after_name=shown[adv_pred],
                      after=fmt_pct(adv_probs[adv_pred])))
    shown_classes = charted_classes(probs, adv_probs, len(names), target)
    st.plotly_chart(inside_charts.before_after(probs[shown_classes], adv_probs[shown_classes],
                                               [names[i] for i in shown_classes]), key="vis_adv_probs")


def charted_classes(probs, adv_probs, n: int, target: int | None) -> list[int]:
    """Every class of a small model; of a large one (ImageNet's 1,000), the top classes before and
    after the attack and the target."""
    if n <= 2 * TOP:
        return list(range(n))
    chosen = set(inside.top_indices(probs, TOP)) | set(inside.top_indices(adv_probs, TOP))
    return sorted(chosen | ({target} if target is not None else set()))


def accuracy_panel(subject: subjects.Subject) -> None:
    """Accuracy on a sample of the test split under FGSM, against epsilon."""
    inside.panel(t("Accuracy against epsilon"), t(
        "The same one-step attack on a sample of test images, at growing strengths: the curve shows how "
        "fast accuracy collapses. A steep fall at one or two pixel levels is normal for a network trained "
        "only on clean images."))
    ref, run = subject.ref, subject.run
    if not results.predictions(run):
        st.caption(t("This run has no evaluated images to sample."))
        return
    n = st.select_slider(t("Test images in the sample"), [16, 32, 64, 128, 256], value=64, key="vis_acc_n")
    task = LongTask("vis_acc", t("Measure"), subject={"run": run.id})
    if task.started:
        images, labels = inside.test_sample(run, n)
        task.work.update(n=len(images))

        def on_step(done: int, batches: int) -> None:
            if done < batches:
                task.progress(done / batches, t("batch {i} of {n}", i=fmt_int(done + 1), n=fmt_int(batches)), force=True)

        on_step(0, -(-len(images) // ATTACK_BATCH))
        task.work["points"] = inside.accuracy_vs_epsilon(ref, images, labels, [e / 255 for e in EPSILON_CURVE],
                                                         on_step, batch_size=ATTACK_BATCH)
        task.done()
    work = task.work
    if work and work.get("points"):
        task.view.plotly_chart(inside_charts.accuracy_vs_epsilon(work["points"], work["n"]), key="vis_acc_chart")
        st.caption(t("Why accuracy can rise again at large ε: FGSM takes one step of size ε in the direction "
                            "that raised the loss at the original image. A small step fools the model; a large one "
                            "overshoots and turns the photo into mostly noise, and what the model answers for noise "
                            "happens to be the right class for some of the images."))
    elif work and work.get("status") in ("cancelled", "interrupted"):
        task.view.caption(t("The measurement was stopped before it finished."))


main()
