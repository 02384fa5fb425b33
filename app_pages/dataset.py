"""Dataset: choose the folder of images, see what is in it and what had to be left out."""
from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from core import data, images
from ui import cache, charts, folders, i18n, state, upload, widgets
from ui.i18n import N_, fmt_int, t

GALLERY_PER_CLASS = 6
EXAMPLE_PATH = "/data/cats_and_dogs"  # a path, shown as it is in every language
DOUBTED = "dataset_doubted"  # a folder asked for that does not look like a dataset, until the person answers
SPLIT_IMAGES = {"train": N_("Train images"), "validation": N_("Validation images"), "test": N_("Test images")}


def main() -> None:
    widgets.page_intro(t("Dataset"), t(
        "Everything starts with a folder of images, one subfolder per class. Here you choose it and "
        "check it before any training: how many images each class has in each split, how big they "
        "are, and every file that cannot be used, with the reason. Small or unbalanced classes and "
        "unreadable files explain many surprises later."))
    folder_chooser()
    upload.upload_panel()
    try:
        ds = state.current_dataset()
    except data.DatasetError as e:
        st.error(widgets.plain(i18n.error_text(e)))
        return
    split_settings(ds)
    overview(ds)
    counts_and_sizes(ds)
    gallery(ds)
    skipped_report(ds)


def folder_chooser() -> None:
    """Four ways to pick the dataset: the sample, a typed path, browsing, recent folders."""
    path = state.dataset_path()
    name = t("the built-in shapes sample") if state.is_sample(path) else widgets.plain(path)
    info, rescan = st.columns([5, 1])
    info.markdown(t("Current dataset: {name}", name=name))
    if rescan.button(t("Scan again"), key="rescan", help=t("Read the folder again (after adding or removing files).")):
        cache.scan_dataset.clear()
    doubt_question()
    sample_tab, path_tab, browse_tab, recent_tab = st.tabs([t("Sample"), t("Type a path"), t("Browse"), t("Recent")])
    with sample_tab:
        sample_choice()
    with path_tab:
        typed_path()
    with browse_tab:
        folder_browser()
    with recent_tab:
        recent_choice()


def open_folder(path: str, confirmed: bool = False) -> None:
    """Make path the current dataset if it is allowed (errors shown where the user acted); a folder
    that does not look like a dataset is asked about first (see doubt_question)."""
    try:
        real = folders.allowed_folder(path)
    except folders.FolderNotAllowed as e:
        st.error(widgets.plain(i18n.error_text(e)))
        return
    if not os.path.isdir(real):
        st.error(t("Folder not found: {folder}", folder=widgets.plain(real)))
        return
    if not confirmed and folder_doubts(real):
        st.session_state[DOUBTED] = real
        st.rerun()
    state.choose_dataset(real)
    folders.remember_folder(real, state.runs_dir())
    st.rerun()


def folder_doubts(path: str) -> list:
    """Why the folder does not look like a dataset (folders.doubts); [] for the sample, and for a
    folder that cannot be used at all (the page says why once it is chosen, as before)."""
    if state.is_sample(path):
        return []
    val, test, seed = state.split_settings()
    try:
        return folders.doubts(cache.scan_dataset(path, val, test, seed))
    except data.DatasetError:
        return []


def doubt_question() -> None:
    """"This folder doesn't look like a dataset: … Use it anyway?" for the folder just asked for."""
    path = st.session_state.get(DOUBTED)
    if not path:
        return
    reasons = "; ".join(widgets.plain(i18n.tm(r)) for r in folder_doubts(path))
    st.warning(t("This folder doesn't look like a dataset: {reasons}. Use it anyway?", reasons=reasons)
               + "  \n" + widgets.plain(path))
    yes, no, _ = st.columns([1, 1, 3])
    if yes.button(t("Use it anyway"), key="doubt_yes", width="stretch"):
        del st.session_state[DOUBTED]
        open_folder(path, confirmed=True)
    if no.button(t("Cancel"), key="doubt_no", width="stretch"):
        del st.session_state[DOUBTED]
        st.rerun()


def sample_choice() -> None:
    """The generated shapes sample: three classes drawn by our own code, no download needed."""
    st.caption(t("Circles, squares and triangles on noisy backgrounds: 80 images per class, "
                 "generated offline. A quick way to try every page."))
    if st.button(t("Use the sample"), key="use_sample"):
        open_folder(cache.sample_folder())


def typed_path() -> None:
    """A folder typed by the user, checked against the allowed data roots."""
    with st.form("typed_path_form", border=False, enter_to_submit=True):  # Enter opens, as the button does
        typed = st.text_input(t("Folder on this server"), key="typed_path", placeholder=EXAMPLE_PATH,
                              help=t("It must lie under: {roots}", roots=", ".join(folders.data_roots())))
        opened = st.form_submit_button(t("Open"), key="open_typed")
    if opened:
        open_folder(typed)


def folder_browser() -> None:
    """Walk down from a data root, one folder at a time, and open the one shown."""
    roots = folders.data_roots()
    here = st.session_state.get("browse_dir")
    if not here or not any(folders.is_inside(here, r) for r in roots):
        here = roots[0]
    root = st.selectbox(t("Data root"), roots, index=next(i for i, r in enumerate(roots) if folders.is_inside(here, r)),
                        format_func=images.display_name)
    if not folders.is_inside(here, root):
        here = root
    st.session_state["browse_dir"] = here
    st.code(images.display_name(here), language=None)
    subs = folders.subfolders(here)
    child = st.selectbox(t("Subfolders"), subs, index=None, key="browse_child", format_func=images.display_name,
                         placeholder=t("(no subfolder)") if not subs else t("choose one"))
    up, down, use = st.columns(3)
    parent = folders.parent_within_roots(here, roots)
    if up.button(t("⬆ Up"), disabled=parent is None, key="browse_up", width="stretch"):
        st.session_state["browse_dir"] = parent
        st.rerun()
    if down.button(t("⬇ Go into"), disabled=child is None, key="browse_down", width="stretch"):
        try:  # a subfolder may be a link to a folder outside the roots: never list what is there
            st.session_state["browse_dir"] = folders.allowed_folder(os.path.join(here, child), roots)
        except folders.FolderNotAllowed as e:
            st.error(widgets.plain(i18n.error_text(e)))
        else:
            st.rerun()
    if use.button(t("Use this folder"), key="browse_use", type="primary", width="stretch"):
        open_folder(os.path.join(here, child) if child else here)


def recent_choice() -> None:
    """Folders opened before (kept in the runs folder, so they survive a restart)."""
    recent = folders.recent_folders(state.runs_dir())
    if not recent:
        st.caption(t("No folder opened yet."))
        return
    chosen = st.selectbox(t("Recent folders"), recent, key="recent_choice", format_func=images.display_name)
    if st.button(t("Open"), key="open_recent"):
        open_folder(chosen)


def split_settings(ds: data.Dataset) -> None:
    """Validation/test fractions and seed, for a folder of class folders (no split of its own)."""
    if ds.layout != "flat":
        st.caption(t("This folder has its own train / validation / test folders: they are used as they are."))
        return
    with st.expander(t("Split (this folder has class folders only, so we split it)"), expanded=False):
        val, test, seed = st.columns(3)
        with val:
            st.slider(t("Validation fraction"), 0.05, 0.5, step=0.05, key=state.VAL_FRACTION,
                      value=state.DEFAULTS[state.VAL_FRACTION], persist_state="session")
        with test:
            st.slider(t("Test fraction"), 0.0, 0.5, step=0.05, key=state.TEST_FRACTION,
                      value=state.DEFAULTS[state.TEST_FRACTION], persist_state="session")
        with seed:
            widgets.seed_input(t("The split is stratified (same share of every class) and drawn from this "
                                 "seed; training uses the same seed."))


def overview(ds: data.Dataset) -> None:
    """Headline numbers: classes, images per split, files skipped."""
    counts = {split: sum(per_class.values()) for split, per_class in ds.counts().items()}
    cols = st.columns(5)
    cols[0].metric(t("Classes"), fmt_int(len(ds.classes)))
    for col, split in zip(cols[1:4], data.SPLITS):
        col.metric(t(SPLIT_IMAGES[split]), fmt_int(counts.get(split, 0)))
    cols[4].metric(t("Skipped files"), fmt_int(len(ds.skipped)))
    st.caption(t("Classes: {names}", names=widgets.comma_list(widgets.plain(c) for c in ds.classes)))
    for warning in ds.warnings:
        st.warning(widgets.plain(i18n.tm(warning)))


def counts_and_sizes(ds: data.Dataset) -> None:
    """Images per class and split; the sizes of the original files."""
    left, right = st.columns(2)
    with left:
        st.subheader(t("Images per class and split"))
        st.plotly_chart(charts.split_counts(ds.counts()), key="counts_chart")
    with right:
        st.subheader(t("Image sizes"))
        st.plotly_chart(charts.image_sizes(ds.sizes), key="sizes_chart")
        st.caption(size_summary(list(ds.sizes.values())))


def size_summary(sizes: list[tuple[int, int]]) -> str:
    """The sizes of the original files, and what training does with them."""
    if not sizes:
        return t("Training resizes every image to a square.")
    if len(set(sizes)) == 1:
        return t("Every image is {width}×{height} px. Training resizes every image to a square.",
                 width=fmt_int(sizes[0][0]), height=fmt_int(sizes[0][1]))
    widths, heights = [w for w, _ in sizes], [h for _, h in sizes]
    return t("Widths {min_width}–{max_width} px, heights {min_height}–{max_height} px. Training resizes every "
             "image to a square.", min_width=fmt_int(min(widths)), max_width=fmt_int(max(widths)),
             min_height=fmt_int(min(heights)), max_height=fmt_int(max(heights)))


def gallery(ds: data.Dataset) -> None:
    """A few training images of every class, as the model will see them (square)."""
    st.subheader(t("Samples per class"))
    train = ds.splits.get("train", [])
    for label, name in enumerate(ds.classes):
        paths = [p for p, lab in train if lab == label][:GALLERY_PER_CLASS]
        st.markdown(f"**{widgets.plain(name)}**")
        widgets.image_grid([cache.thumbnail(p) for p in paths], [os.path.basename(p) for p in paths],
                           columns=GALLERY_PER_CLASS)


def skipped_report(ds: data.Dataset) -> None:
    """Every file that was left out, and why (nothing in the folder is changed)."""
    st.subheader(t("Skipped files ({n})", n=fmt_int(len(ds.skipped))))
    if not ds.skipped:
        st.caption(t("Every file in the folder is a usable image."))
        return
    rows = [{t("file"): images.display_name(os.path.relpath(s.path, ds.root)),
             t("reason"): images.display_name(i18n.tm(s.reason))} for s in ds.skipped]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="skipped_table")


main()
