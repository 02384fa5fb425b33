"""Inside a model trained on real photos: Grad-CAM on cats and dogs, and the targeted attack dog -> cat.

(a) Writes docs/gradcam_cat.png and docs/gradcam_dog.png (or into --out): the first PER_CLASS test photos of each
    class that the run classifies correctly, originals on top, the Grad-CAM of the predicted class
    (last conv layer, --method) below, each labelled with the predicted probability.
(b) Runs the iterative targeted attack "dog -> cat" on the first 10 dog test photos that the model
    classifies correctly, at each epsilon of --epsilons (pixel levels out of 255, at most 2), and
    prints how many become "cat" with the probabilities, both on the float image the attack returns
    and after rounding it to 8-bit pixels (what a saved PNG would hold).

    KERAS_HOME=../shared/weights python -m bench.explain_real RUN_DIR [--epsilons 1 2] [--steps 10]
        [--method grad-cam++|grad-cam] [--out docs]

RUN_DIR is a run of a two-class cats/dogs dataset, e.g. from
    python -m core.train --data ../shared/datasets/cats_and_dogs_small --strategy feature-extraction \
        --base mobilenet_v2 --image-size 160 --runs-dir /tmp/cd_runs
"""
from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("KERAS_HOME", os.path.join(ROOT, "..", "shared", "weights"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, ROOT)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from core import adversarial, explain, images  # noqa: E402
from core.cam_methods import CAM_METHODS, DEFAULT_CAM_METHOD  # noqa: E402
from core.runs import load_model, read_json  # noqa: E402

PER_CLASS = 8
ATTACKED = 10
DOCS = os.path.join(ROOT, "docs")


def class_index(classes: list[str], stem: str) -> int:
    """'cat' finds 'cats' or 'cat' among the class names."""
    for i, c in enumerate(classes):
        if c.lower().rstrip("s") == stem:
            return i
    raise SystemExit(f"This run has no class '{stem}' (classes: {', '.join(classes)}).")


def correct_images(predictions: list[dict], label: int, n: int, size: int, resize: str):
    """The first n images of class `label` the model got right: [(path, uint8 image)]."""
    chosen = [r["path"] for r in predictions if r["true"] == label and r["pred"] == label][:n]
    return [(p, images.load_image(p, size, resize)) for p in chosen]


def label(image: np.ndarray, text: str) -> np.ndarray:
    """The image with `text` on a dark band at its bottom."""
    out = image.copy()
    h = out.shape[0]
    out[h - 18:] = (out[h - 18:] * 0.35).astype(np.uint8)
    cv2.putText(out, text, (4, h - 5), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def gradcam_sheet(model, images, classes: list[str], path: str, method: str) -> list[str]:
    """Originals on top, Grad-CAM overlays below; saved as a palette PNG (small). Returns one line per image."""
    top, bottom, lines = [], [], []
    layer = explain.last_conv_layer(model)
    for p, image in images:
        heat, c, probs = explain.grad_cam(model, image, None, layer, method)
        top.append(label(image, os.path.basename(p)))
        bottom.append(label(explain.overlay(image, heat, 0.45), f"{classes[c]} {probs[c]:.1%}"))
        ys, xs = np.unravel_index(np.argmax(heat), heat.shape)
        lines.append(f"  {os.path.basename(p)}: {classes[c]} {probs[c]:.3f}; peak of the {heat.shape[0]}x"
                     f"{heat.shape[1]} map at row {ys}, col {xs}; {np.mean(heat > 0.5):.0%} of cells above half")
    sheet = np.vstack([np.hstack(top), np.hstack(bottom)])
    Image.fromarray(sheet).quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return lines


def attack_dogs(model, dogs, cat: int, dog: int, epsilon_levels: float, steps: int) -> tuple[int, int]:
    """Targeted attack dog -> cat on each image; prints the probabilities; returns the successes
    (float image, 8-bit rounded image)."""
    ok_float = ok_uint8 = 0
    for p, image in dogs:
        before = explain.probabilities(model, image)
        adv, after = adversarial.targeted_attack(model, image, cat, epsilon_levels / 255, steps=steps)
        rounded = explain.probabilities(model, np.uint8(np.round(adv)))
        change = np.abs(adv - image.astype(np.float32)).max()
        ok_float += int(np.argmax(after) == cat)
        ok_uint8 += int(np.argmax(rounded) == cat)
        print(f"  {os.path.basename(p):<14} p(dog) {before[dog]:.4f} -> p(cat) {after[cat]:.4f} "
              f"(8-bit: {rounded[cat]:.4f})  max change {change:.2f} levels  "
              f"{'cat' if np.argmax(after) == cat else 'still dog'}")
    return ok_float, ok_uint8


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir")
    parser.add_argument("--epsilons", type=float, nargs="+", default=[1.0, 2.0],
                        help="pixel levels out of 255 (at most 2 for the goal)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--method", choices=list(CAM_METHODS), default=DEFAULT_CAM_METHOD)
    parser.add_argument("--out", default=DOCS, help="folder for gradcam_cat.png and gradcam_dog.png")
    args = parser.parse_args()

    config = read_json(os.path.join(args.run_dir, "config.json"), {}) or {}
    predictions = read_json(os.path.join(args.run_dir, "predictions.json"), []) or []
    if not config or not predictions:
        raise SystemExit(f"{args.run_dir} is not an evaluated run (config.json / predictions.json missing).")
    classes, size, resize = config["classes"], int(config["image_size"]), config.get("resize", "crop")
    cat, dog = class_index(classes, "cat"), class_index(classes, "dog")
    model = load_model(args.run_dir)
    accuracy = np.mean([r["true"] == r["pred"] for r in predictions])
    print(f"Run {os.path.basename(args.run_dir)}: {config['strategy']} {config['base']} at {size} px, "
          f"test accuracy {accuracy:.1%} on {len(predictions)} images; Grad-CAM layer {explain.last_conv_layer(model)}")

    os.makedirs(args.out, exist_ok=True)
    for stem, index in (("cat", cat), ("dog", dog)):
        path = os.path.join(args.out, f"gradcam_{stem}.png")
        images = correct_images(predictions, index, PER_CLASS, size, resize)
        lines = gradcam_sheet(model, images, classes, path, args.method)
        print(f"\n{path} ({os.path.getsize(path) / 1024:.0f} KB):")
        print("\n".join(lines))

    dogs = correct_images(predictions, dog, ATTACKED, size, resize)
    for levels in args.epsilons:
        print(f"\nTargeted attack dog -> cat, epsilon {levels:g}/255, {args.steps} steps of {levels / 4:g}/255, "
              f"on {len(dogs)} dog test photos classified correctly:")
        start = time.perf_counter()
        ok_float, ok_uint8 = attack_dogs(model, dogs, cat, dog, levels, args.steps)
        print(f"  -> {ok_float}/{len(dogs)} turned into cat ({ok_uint8}/{len(dogs)} after rounding to 8-bit pixels) "
              f"in {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
