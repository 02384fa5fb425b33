"""Visualize: inputs made by gradient ascent (filter patterns, "ideal" class images) and inputs that
fool the model (adversarial examples)."""
from __future__ import annotations

import numpy as np
import streamlit as st

from core.runs import Run
from ui import inside, inside_charts, results, widgets
from ui.i18n import N_, fmt_int, fmt_num, fmt_pct, nt, t
from ui.long_task import LongTask

EPSILON_CURVE = [0, 0.5, 1, 2, 4, 8, 16]  # pixel levels (x / 255) measured for the accuracy chart
SHOW_SIZE = 320  # px: optimized images are shown at this width, whatever the model's input size
SHOW_EVERY = 10  # steps: the ideal image is redrawn this often while it grows
ATTACK_BATCH = 16  # images per batch of the accuracy measurement: the progress bar moves once a batch
ATTACKS = {"fgsm": N_("FGSM (one step)"), "targeted": N_("Targeted (iterative)")}


def main() -> None:
    widgets.page_intro(t("Visualize"), t(
        "Here the image is not given, it is computed: gradient ascent changes the pixels themselves, "
        "either to excite one part of the network or to fool it. The optimizations take from seconds to "
        "a minute on a CPU; each shows its progress and can be cancelled."))
    run = inside.run_picker()
    if run is None:
        return
    ref = inside.model_ref(run)
    filter_tab, ideal_tab, attack_tab = st.tabs([t("Filter patterns"), t("Ideal class image"),
                                                   t("Adversarial examples")])
    with filter_tab:
        filter_patterns_panel(ref, run)
    with ideal_tab:
        ideal_class_panel(ref, run)
    with attack_tab:
        adversarial_panel(ref, run)
        accuracy_panel(ref, run)


def filter_patterns_panel(ref, run: Run) -> None:
    """The inputs that excite the first N filters of a layer most, as a grid."""
    inside.panel(t("Filter patterns"), t(
        "Each image is grown from gray noise by gradient ascent until one filter of the chosen layer "
        "responds to it as strongly as it can: it is the pattern that filter detects. Low layers detect "
        "edges and colours, higher ones textures and then motifs, which is why a network can be reused "
        "for photos it never saw."))
    layers = inside.feature_layers(ref)
    cols = st.columns(3)
    layer = cols[0].selectbox(t("Layer (bottom to top)"), layers, index=len(layers) // 2,
                              key=f"vis_filter_layer_{run.id}", format_func=lambda n: f"{layers.index(n) + 1}. {n}")
    channels = inside.layer_channels(ref, layer)
    n = cols[1].slider(t("Filters (the first N)"), 1, min(64, channels), min(8, channels), key="vis_filter_n")
    steps = cols[2].slider(t("Steps per filter"), 5, 100, 30, step=5, key="vis_filter_steps")
    task = LongTask("vis_filter", t("Draw the patterns"), subject={"run": run.id})
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


def ideal_class_panel(ref, run: Run) -> None:
    """Activation maximization of one class, shown as it evolves."""
    inside.panel(t("\"Ideal\" class image"), t(
        "Starting from noise, the pixels are pushed to raise the chosen class's score, with a little "
        "random shifting (jitter) and a smoothness penalty (total variation) so that the result looks "
        "like an image and not like static. What comes out is what the model has learned to look for: "
        "fur textures and eyes for a cat, rarely a whole cat."))
    names = inside.classes(run)
    cols = st.columns(2)
    target = cols[0].selectbox(t("Class"), range(len(names)), format_func=names.__getitem__,
                               key=f"vis_ideal_class_{run.id}")
    steps = cols[1].slider(t("Steps"), 20, 500, 150, step=10, key="vis_ideal_steps")
    task = LongTask("vis_ideal", t("Draw the ideal image"), subject={"run": run.id, "target": target})
    if task.started:
        work = task.work
        work.update(total=inside.planned_steps(steps), points=[])

        def on_step(step: int, total: int, image: np.ndarray, probability: float) -> None:
            if step % SHOW_EVERY and step != total:
                return
            work.update(step=step, image=image, probability=probability)
            work["points"].append({"step": step, "probability": probability})
            task.progress(step / total, t("step {step} of {total}: p({name}) = {probability}", step=fmt_int(step),
                                          total=fmt_int(total), name=names[target], probability=fmt_pct(probability)),
                          force=True)
            task.view.image(image, caption=t("step {step}", step=fmt_int(step)), width=SHOW_SIZE)

        result = inside.ideal_class_image(ref, target, steps, on_step)
        work.update(image=result.image, probability=result.value,
                    points=[{"step": h["step"], "probability": h["value"]} for h in result.history])
        task.done()
    if task.work and task.work.get("image") is not None:
        with task.view.container():
            show_ideal(task.work, names)


def show_ideal(work: dict, names: list[str]) -> None:
    name = names[work["target"]]
    left, right = st.columns([1, 2], gap="large")
    shown = {"name": widgets.plain(name), "probability": fmt_pct(work["probability"]), "total": fmt_int(work["total"])}
    if work["status"] == "done":
        caption = t("the ideal {name}: the model gives it {probability} after {total} steps ({seconds} s)",
                    seconds=fmt_num(work["seconds"], 0), **shown)
    elif work["status"] == "cancelled":
        caption = t("cancelled at step {step} of {total}: p({name}) = {probability}", step=fmt_int(work["step"]), **shown)
    else:
        caption = t("stopped (the page was changed) at step {step} of {total}: p({name}) = {probability}",
                    step=fmt_int(work["step"]), **shown)
    left.image(work["image"], width="stretch", caption=caption)
    right.plotly_chart(inside_charts.probability_by_step(work["points"], name), key="vis_ideal_curve")


def adversarial_panel(ref, run: Run) -> None:
    """FGSM or the targeted attack on one image: original, perturbation, result, both predictions."""
    inside.panel(t("Adversarial examples"), t(
        "A change of a pixel level or two, far below what you can see, chosen along the gradient of the "
        "loss, is enough to change the prediction: FGSM takes one such step away from the true class, "
        "the targeted attack takes several towards a class you choose. A model can be accurate and "
        "still rely on features no person would."))
    names = inside.classes(run)
    picked = inside.image_picker(run, "adv")
    if picked is None:
        return
    probs = inside.probabilities(ref, picked.image)
    pred = int(probs.argmax())
    cols = st.columns(3)
    method = cols[0].radio(t("Attack"), list(ATTACKS), key="vis_adv_method", horizontal=True,
                           format_func=lambda m: t(ATTACKS[m]))
    levels = cols[1].slider(t("Epsilon (pixel levels out of 255)"), 0.5, 16.0, 2.0, step=0.5, key="vis_adv_eps",
                            help=t("The most any pixel may change, in levels of the 0..255 range."))
    target, steps = None, 10
    if method == "targeted":
        others = [i for i in range(len(names)) if i != pred] or [pred]
        target = cols[2].selectbox(t("Target class"), others, format_func=names.__getitem__,
                                   key=f"vis_adv_target_{run.id}")
        steps = cols[2].slider(t("Steps"), 1, 50, 10, key="vis_adv_steps")
    label = picked.true if picked.true is not None else pred  # an upload: attack the model's own answer
    adversarial, adv_probs = inside.attack(ref, picked.image, method, label, levels / 255, target, steps)
    show_attack(picked, probs, adversarial, adv_probs, names, levels, target)


def show_attack(picked: inside.Picked, probs, adversarial, adv_probs, names, levels: float, target) -> None:
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
    st.plotly_chart(inside_charts.before_after(probs, adv_probs, names), key="vis_adv_probs")


def accuracy_panel(ref, run: Run) -> None:
    """Accuracy on a sample of the test split under FGSM, against epsilon."""
    inside.panel(t("Accuracy against epsilon"), t(
        "The same one-step attack on a sample of test images, at growing strengths: the curve shows how "
        "fast accuracy collapses. A steep fall at one or two pixel levels is normal for a network trained "
        "only on clean images."))
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
    elif work and work.get("status") in ("cancelled", "interrupted"):
        task.view.caption(t("The measurement was stopped before it finished."))


main()
