"""Predict: a trained model on new images (uploaded, or a whole folder to a CSV), and its export; or
pretrained ImageNet classifiers, side by side, on one image."""
from __future__ import annotations

import json
import os

import pandas as pd
import streamlit as st

from core import export, images, predict
from core.runs import Run
from ui import folders, inside, predictor, widgets
from ui import subject as subjects
from ui.i18n import N_, error_text, fmt_int, fmt_num, fmt_pct, nt, t, tm
from ui.upload import IMAGE_UPLOAD_MB

GALLERY_MAX = 24
FORMAT_LABELS = {"keras": "Keras (.keras)", "savedmodel": "TensorFlow SavedModel (zip)", "tflite": "TensorFlow Lite (.tflite)"}
FOLDER_EXAMPLE = "/data/new_photos"
INFO_FILE = "export.json"  # written beside every export (core.export)
# The headers of core.predict's columns (the prob_<class> columns are headed by their class name).
ROW_HEADERS = {"path": N_("path"), "predicted": N_("predicted"), "confidence": N_("confidence"), "error": N_("error")}
FOLDER_RESULT = "predict_folder_result"
EXPORT_RESULT = "predict_export_result"
EXPORT_ASKED = "predict_export_asked"  # the run shown when Export was clicked
TOP = 5  # classes shown per pretrained classifier


def main() -> None:
    widgets.page_intro(t("Predict"), t(
        "A trained model at work on images it has never seen: upload a few, or classify a whole folder "
        "on the server and download the answers as a CSV. Every image is cropped and resized exactly as "
        "the run's training images were. Export the model to use it outside Transfer Lab. A pretrained "
        "ImageNet classifier needs no run: it names the 1,000 classes it knows in any photo."), page="predict")
    subject = subjects.picker()
    if subject is None:
        return
    if subject.pretrained:
        top_classes_panel(subject)
        return
    uploads_panel(subject)
    folder_panel(subject)
    export_panel(subject.run)


def top_classes_panel(subject: subjects.Subject) -> None:
    """One image, the top classes of each chosen pretrained classifier side by side."""
    inside.panel(t("Top-5 ImageNet classes"), t(
        "A classifier trained on ImageNet answers with a probability for each of its 1,000 classes; here "
        "are its five best guesses. Put several classifiers side by side: they often agree on the first "
        "guess and differ on the others."))
    picked = inside.image_picker(subject, "predict_pretrained")
    if picked is None:
        return
    available = subjects.available_classifiers()
    chosen = st.multiselect(t("Classifiers side by side"), available, default=[subject.key],
                            key=f"predict_compare_{subject.key}", format_func=subjects.classifier_choice,
                            help=t("Only the classifiers whose weights are on this server are offered."))
    cols = st.columns([1] + [1] * max(1, len(chosen)), gap="medium")
    cols[0].image(picked.image, caption=widgets.plain(picked.name), width="stretch")
    for col, key in zip(cols[1:], chosen):
        with col:
            top_classes_table(subjects.of_classifier(key), picked)


def top_classes_table(subject: subjects.Subject, picked: inside.Picked) -> None:
    """A classifier's name and its top classes with their probabilities."""
    st.markdown(f"**{subject.name}**")
    try:
        top = predictor.top_classes(subject, picked, TOP)
    except (ValueError, OSError) as e:
        st.error(t("{name} cannot be used: {why}.", name=widgets.plain(picked.name), why=widgets.plain(error_text(e))))
        return
    table = pd.DataFrame({"class": [name for _, name, _ in top], "probability": [p for _, _, p in top]})
    st.dataframe(table, hide_index=True, key=f"predict_top_{subject.key}", column_config={
        "class": st.column_config.Column(t("Class")),
        "probability": st.column_config.ProgressColumn(t("probability"), format="percent", min_value=0.0,
                                                       max_value=1.0)})


def uploads_panel(subject: subjects.Subject) -> None:
    """Uploaded images: a thumbnail with the predicted class each, and the table of probabilities."""
    inside.panel(t("Your images"), t(
        "Each image gets the class with the highest probability; the table has the probability of every "
        "class. A file that cannot be read gets a line saying why, and the others go on."))
    files = st.file_uploader(t("Image files"), type=inside.UPLOAD_TYPES, accept_multiple_files=True,
                             key="predict_uploads", max_upload_size=IMAGE_UPLOAD_MB)
    if not files:
        st.caption(t("Choose one or several photos."))
        return
    contents = [(f.name, f.getvalue()) for f in files]
    rows = predictor.predict_uploads(subject, contents)
    for r in rows:
        if r["error"]:
            st.error(t("{name} cannot be used: {why}.", name=widgets.plain(r["path"]), why=widgets.plain(tm(r["error"]))))
    good = [(r, content) for r, (_, content) in zip(rows, contents) if not r["error"]]
    if not good:
        return
    shown = good[:GALLERY_MAX]
    widgets.image_grid([predictor.upload_thumbnail(content) for _, content in shown],
                       [f"{r['path']}: {r['predicted']} {fmt_pct(r['confidence'], 0)}" for r, _ in shown], columns=6)
    if len(good) > GALLERY_MAX:
        st.caption(t("The first {shown} of {n} images; the table has them all.", shown=fmt_int(GALLERY_MAX),
                     n=fmt_int(len(good))))
    rows_table(rows, list(subject.classes), "predict_uploads_table")
    if not subject.pretrained:
        st.caption(t("A model only knows its own classes: a photo of anything else still gets one of them, often "
                     "with a high probability. The probability says which of its classes fits best, not that the "
                     "photo shows one of them."))


def folder_panel(subject: subjects.Subject) -> None:
    """Every image of a folder on the server (subfolders too), as a table and a CSV download."""
    inside.panel(t("A folder on the server"), t(
        "Every file in the folder and its subfolders is classified, or listed with the reason it cannot "
        "be used. Nothing is written into the folder: the CSV is yours to download (the command line "
        "`python -m core.predict RUN_DIR FOLDER` writes the same one)."))
    left, right = st.columns([4, 1], vertical_alignment="bottom")
    typed = left.text_input(t("Folder on this server"), key="predict_folder", placeholder=FOLDER_EXAMPLE,
                            help=t("It must lie under: {folders}", folders=", ".join(folders.data_roots())))
    if right.button(t("Predict the folder"), key="predict_folder_go", width="stretch"):
        predict_folder(subject, typed)
    result = st.session_state.get(FOLDER_RESULT)
    if result and result["run"] == subject.id:
        folder_result(subject, result)


def predict_folder(subject: subjects.Subject, typed: str) -> None:
    """Check the folder against the data roots, classify it with a progress bar, keep the rows."""
    try:
        folder = folders.allowed_folder(typed)
    except folders.FolderNotAllowed as e:
        st.error(widgets.plain(error_text(e)))
        return
    bar = st.progress(0.0, text=t("Reading the folder…"))

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=t("{done} of {total} files", done=fmt_int(done), total=fmt_int(total)))

    try:
        rows = predict.predict_folder(predictor.predictor(subject), folder, within=folders.data_roots(), progress=progress)
    except predict.PredictError as e:
        st.error(widgets.plain(error_text(e)))
        return
    finally:
        bar.empty()
    st.session_state[FOLDER_RESULT] = {"run": subject.id, "folder": folder, "rows": rows}


def folder_result(subject: subjects.Subject, result: dict) -> None:
    """The counts per class, the rows, and the CSV."""
    rows, classes = result["rows"], list(subject.classes)
    s = predict.summary(rows, classes)
    counts = ", ".join(f"{widgets.plain(c)} {fmt_int(n)}" for c, n in s["counts"].items())
    names = {"folder": widgets.plain(result["folder"]), "counts": counts}
    if s["errors"]:
        st.markdown(nt("**{folder}** — {n} file: {counts}; {errors} could not be used",
                       "**{folder}** — {n} files: {counts}; {errors} could not be used", s["images"],
                       errors=fmt_int(s["errors"]), **names))
    else:
        st.markdown(nt("**{folder}** — {n} file: {counts}", "**{folder}** — {n} files: {counts}", s["images"], **names))
    rows_table(rows, classes, "predict_folder_table")
    name = f"{images.display_name(os.path.basename(result['folder'])) or 'folder'}-{subject.id}.csv"
    st.download_button(t("Download the CSV"), predict.to_csv(rows, predictor.predictor(subject).columns()),
                       file_name=name, mime="text/csv", key="predict_folder_csv", icon=":material/download:")


def rows_table(rows: list[dict], classes: list[str], key: str) -> None:
    """core.predict's rows: file, prediction, confidence, one probability column per class, error
    (the reasons in the session's language; the table keeps core's column names, under translated headers)."""
    def probability(label: str):
        return st.column_config.ProgressColumn(label, format="percent", min_value=0.0, max_value=1.0)

    config = {key: st.column_config.Column(t(label)) for key, label in ROW_HEADERS.items()}
    config |= {"confidence": probability(t(ROW_HEADERS["confidence"])),
               **{f"prob_{c}": probability(c) for c in classes}}
    table = pd.DataFrame(rows)
    if table["error"].astype(bool).any():
        table["error"] = table["error"].map(lambda why: tm(why) if why else why)
    else:
        table = table.drop(columns="error")
    st.dataframe(table, hide_index=True, key=key, column_config=config)


def export_panel(run: Run) -> None:
    """Export the run's model as .keras, SavedModel or TFLite (float or int8), then download it."""
    inside.panel(t("Export the model"), t(
        "The exported model takes RGB images of the run's size with pixel values 0–255 and does its own "
        "preprocessing; export.json beside it lists the classes in output order, the input size and how "
        "images were cropped. TFLite int8 is about four times smaller; it is calibrated on the run's "
        "training images and may differ slightly from the float model."))
    cols = st.columns([2, 1, 1], vertical_alignment="bottom")
    fmt = cols[0].selectbox(t("Format"), export.FORMATS, format_func=FORMAT_LABELS.get, key="predict_export_format")
    int8 = cols[1].checkbox(t("int8 (TFLite)"), key="predict_export_int8", disabled=fmt != "tflite",
                            help=t("Integer weights and activations, calibrated on up to {n} training images.",
                                   n=fmt_int(export.REPRESENTATIVE_IMAGES)))
    if cols[2].button(t("Export"), key="predict_export_go", type="primary", width="stretch",
                      on_click=_remember_asked, args=(run.id,)):
        asked = st.session_state.pop(EXPORT_ASKED, run.id)
        if asked != run.id:  # the run shown was deleted: the picker fell back to another one
            st.error(t("Run {run} no longer exists (it was deleted), so nothing was exported. Choose the "
                       "run to export above and click Export again.", run=asked))
            return
        with st.spinner(t("Exporting…")):
            try:
                result = export.export_run(run.run_dir, fmt, int8 and fmt == "tflite")
            except (export.ExportError, export.ExportFailed) as e:
                st.error(widgets.plain(error_text(e)))
                return
        st.session_state[EXPORT_RESULT] = {**result, "run": run.id}
    result = st.session_state.get(EXPORT_RESULT)
    if result and result["run"] == run.id and os.path.exists(result["path"]):
        export_result(result)


def _remember_asked(run_id: str) -> None:
    """The button's callback: which run the user saw when clicking (the page may show another by
    the time it reruns, if that run was deleted meanwhile)."""
    st.session_state[EXPORT_ASKED] = run_id


def export_result(result: dict) -> None:
    """Where the export is on the server, its download, and its export.json."""
    st.success(t("Exported to {folder} ({size} MB, {seconds} s).", folder=widgets.plain(result["folder"]),
                 size=fmt_num(result["bytes"] / 1e6, 2), seconds=fmt_num(result["seconds"], 1)))
    label, name, mime, content = predictor.export_download(result)
    with open(result["info"], encoding="utf-8") as f:
        info = json.load(f)
    left, right = st.columns(2)
    left.download_button(label, content, file_name=name, mime=mime, key="predict_export_download",
                         icon=":material/download:", on_click="ignore")
    right.download_button(t("Download {name}", name=INFO_FILE), json.dumps(info, indent=1), file_name=INFO_FILE,
                          mime="application/json", key="predict_export_info", on_click="ignore")
    with st.expander(INFO_FILE):
        st.json(info)


main()
