"""Augment: the augmentation settings, previewed live on one image through the training layers."""
from __future__ import annotations

import os
from functools import partial

import streamlit as st

from core import data, images
from core.augment import FILL_MODE_LABELS, FILL_MODES, AugmentConfig
from ui import augment_files, cache, i18n, state, widgets
from ui.i18n import N_, fmt_int, t
from ui.upload import IMAGE_UPLOAD_MB

PREVIEW_SIZE = 160
VARIANTS = 12
DEFAULT_COPIES, MAX_COPIES = 20, 500
# Slider ranges: (min, max, step, format) per AugmentConfig field.
RANGES = {
    "rotation": (0.0, 180.0, 5.0, "%.0f°"),
    "width_shift": (0.0, 0.5, 0.05, "%.2f"),
    "height_shift": (0.0, 0.5, 0.05, "%.2f"),
    "shear": (0.0, 0.5, 0.05, "%.2f"),
    "zoom": (0.0, 0.5, 0.05, "%.2f"),
    "brightness": (0.0, 0.5, 0.05, "%.2f"),
    "contrast": (0.0, 0.9, 0.05, "%.2f"),
    "hue": (0.0, 0.5, 0.02, "%.2f"),
    "channel_shift": (0.0, 100.0, 5.0, "%.0f"),
}
FLIPS = ("horizontal_flip", "vertical_flip")
HELP = {
    "rotation": N_("Random rotation, up to this many degrees either way."),
    "width_shift": N_("Random horizontal shift, as a fraction of the width."),
    "height_shift": N_("Random vertical shift, as a fraction of the height."),
    "shear": N_("Random shear (slanting), as a fraction."),
    "zoom": N_("Random zoom in or out, by up to this fraction."),
    "brightness": N_("Random brightness change, as a fraction of the value range."),
    "contrast": N_("Random contrast change, as a fraction."),
    "hue": N_("Random hue shift, as a fraction of a full turn of the colour wheel."),
    "channel_shift": N_("Random shift of each colour channel, up to this many levels of 255 (Keras' "
                        "channel_shift_range)."),
}
LABELS = {"rotation": N_("Rotation"), "width_shift": N_("Width shift"), "height_shift": N_("Height shift"),
          "shear": N_("Shear"), "zoom": N_("Zoom"), "brightness": N_("Brightness"), "contrast": N_("Contrast"),
          "hue": N_("Hue"), "channel_shift": N_("Channel shift"), "horizontal_flip": N_("Horizontal flip"), "vertical_flip": N_("Vertical flip")}


def main() -> None:
    widgets.page_intro(t("Augment"), t(
        "With few images a network memorises them; augmentation shows it a slightly different version "
        "of every image at every epoch (turned, shifted, zoomed, flipped, recoloured), so it has to "
        "learn the object rather than the pixels. Move a slider and the grid shows what training "
        "will see: these are the very layers, and the very settings, that the Train page uses when "
        "augmentation is on."), page="augment")
    image, name = image_picker()
    editor(image, name)


@st.fragment
def editor(image, name: str | None) -> None:
    """The settings and the grid: a slider reruns only this part of the page, so the grid follows at once."""
    settings, grid = st.columns([1, 2], gap="large")
    with settings:
        config = augment_sliders()
    with grid:
        variants_grid(image, config)
        download_copies(image, name, config)


def image_picker() -> tuple:
    """One image to augment, from the current dataset or uploaded, and its file name: (None, None) if none."""
    source = st.radio(t("Image"), [N_("From the dataset"), N_("Upload one")], format_func=t, horizontal=True,
                      key="aug_source", persist_state="session")
    if source == "Upload one":
        upload = st.file_uploader(t("An image file"), type=sorted(e.lstrip(".") for e in images.IMAGE_EXTENSIONS),
                                  key="aug_upload", max_upload_size=IMAGE_UPLOAD_MB)
        if upload is None:
            st.caption(t("Choose a file to see it augmented."))
            return None, None
        try:
            return images.load_image(upload, PREVIEW_SIZE), upload.name
        except ValueError as e:
            st.error(t("{name} cannot be used: {why}.", name=widgets.plain(upload.name), why=widgets.plain(e)))
            return None, None
    try:
        ds = state.current_dataset()
    except data.DatasetError as e:
        st.error(widgets.plain(i18n.error_text(e)))
        return None, None
    items = ds.splits["train"]
    left, right = st.columns(2)
    label = left.selectbox(t("Class"), range(len(ds.classes)), format_func=lambda i: ds.classes[i],
                           key="aug_class", persist_state="session")
    paths = [p for p, lab in items if lab == label]
    path = right.selectbox(t("File"), paths, format_func=lambda p: images.display_name(os.path.basename(p)),
                           key="aug_file", persist_state="session")
    if not path:
        return None, None
    return cache.thumbnail(path, PREVIEW_SIZE), os.path.basename(path)


def augment_sliders() -> AugmentConfig:
    """One control per AugmentConfig field; the result becomes the session's augmentation config."""
    current = state.augment_config().to_dict()
    for name, value in current.items():  # seed the widgets from the one stored config
        st.session_state.setdefault(f"aug_{name}", widget_value(name, value))
    presets = st.columns(3)
    presets[0].button(t("Classic"), on_click=apply_preset, args=(AugmentConfig.classic(),),
                      help=t("Deep Learning with Python §5.2: rotation 40°, shifts 0.2, shear 0.2, zoom 0.2, "
                             "horizontal flip."), width="stretch", key="aug_classic")
    presets[1].button(t("Light"), on_click=apply_preset, args=(AugmentConfig.light(),),
                      help=t("The Keras blog's: shear 0.2, zoom 0.2, horizontal flip. A small convnet trained "
                             "from scratch learns faster with it (docs/BENCHMARKS.md)."), width="stretch",
                      key="aug_light")
    presets[2].button(t("None"), on_click=apply_preset, args=(AugmentConfig(),), width="stretch",
                      key="aug_none", help=t("Every slider to zero: the images as they are."))
    values = {}
    for name, (low, high, step, fmt) in RANGES.items():
        values[name] = st.slider(t(LABELS[name]), low, high, step=step, format=fmt,
                                 key=f"aug_{name}", help=t(HELP[name]))
    for name in FLIPS:
        values[name] = st.checkbox(t(LABELS[name]), key=f"aug_{name}")
    values["fill_mode"] = st.radio(t("Fill the uncovered corners with"), FILL_MODES, horizontal=True,
                                   format_func=lambda mode: t(FILL_MODE_LABELS[mode]), key="aug_fill_mode",
                                   help=t("Turning, shifting or zooming out uncovers parts of the frame: copy the "
                                          "nearest edge pixel, mirror the image, or leave them black."))
    config = AugmentConfig.from_dict(values)
    state.set_augment_config(config)
    return config


def apply_preset(config: AugmentConfig) -> None:
    state.set_augment_config(config)
    for name, value in config.to_dict().items():
        st.session_state[f"aug_{name}"] = widget_value(name, value)


def widget_value(name: str, value):
    """The control's value: within the slider's range (a link's value may lie outside it)."""
    if name == "fill_mode":
        return str(value)
    if name in FLIPS:
        return bool(value)
    low, high = RANGES[name][:2]
    return min(max(float(value), low), high)


def variants_grid(image, config: AugmentConfig) -> None:
    """The image, then augmented variants drawn afresh with the same settings."""
    if image is None:
        return
    head, button = st.columns([3, 1])
    head.markdown(t("**The original and {n} random variants** — {settings}", n=VARIANTS - 1,
                    settings=widgets.describe_augment(config)))
    if button.button(t("New draw"), key="aug_reseed", help=t("Draw other random variants with the same settings.")):
        st.session_state["aug_seed"] = st.session_state.get("aug_seed", 0) + 1
    variants = cache.augment_preview(image, config.to_dict(), VARIANTS - 1, st.session_state.get("aug_seed", 0))
    widgets.image_grid([image] + variants, [t("original")] + [t("variant {i}", i=i) for i in range(1, VARIANTS)],
                       columns=4)


def download_copies(image, name: str | None, config: AugmentConfig) -> None:
    """N augmented copies of the image as PNG files in a zip (made when the button is clicked)."""
    if image is None:
        return
    count, button = st.columns([1, 2], vertical_alignment="bottom")
    n = int(count.number_input(t("Copies"), 1, MAX_COPIES, value=DEFAULT_COPIES, key="aug_copies",
                               help=t("How many augmented copies to write, as the course writes them to disk.")))
    stem = augment_files.ascii_stem(name)
    button.download_button(
        t("Download {n} augmented copies (zip of PNG files)", n=fmt_int(n)),
        data=partial(augment_files.augmented_zip, image, config.to_dict(), n, st.session_state.get("aug_seed", 0),
                     stem),
        file_name=augment_files.zip_name(stem), mime="application/zip", key="aug_download", on_click="ignore",
        icon=":material/download:",
        help=t("{size} px PNG files, drawn afresh with the settings above.", size=fmt_int(PREVIEW_SIZE)))


main()
