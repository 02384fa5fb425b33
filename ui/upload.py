"""Upload a dataset: a .zip of class folders from the user's computer, unpacked on the server
(core.uploads), then chosen and scanned like any folder; the user's uploaded datasets, each with
a Use and a Delete button (Delete asks first)."""
from __future__ import annotations

import os

import streamlit as st

from core import uploads
from core.messages import ConfigError
from ui import cache, i18n, state, widgets
from ui.i18n import fmt_int, t

IMAGE_UPLOAD_MB = 20  # the image uploaders' limit (Augment, Predict, Inspect): far below a dataset's
UNPACKED = "upload_unpacked"        # (file id, error Message or None) of the last zip unpacked
CONFIRM_DELETE = "upload_confirm"   # the uploaded dataset whose Delete was pressed, until confirmed


def upload_panel() -> None:
    """The uploader and the list of the user's uploaded datasets, in an expander of their own."""
    with st.expander(t("Upload a dataset (.zip)"), expanded=False):
        try:
            settings = uploads.UploadSettings.from_env()
            uploaded = uploads.list_uploads(state.owner_id(), settings)
        except uploads.UploadsOff as e:  # how the server was started: a note, not an error of the user's
            st.info(widgets.plain(i18n.error_text(e)))
            return
        except (uploads.UploadError, ConfigError) as e:
            st.error(widgets.plain(i18n.error_text(e)))
            return
        zip_uploader(settings)
        uploaded_list(uploaded, settings)


def upload_limit_mb(settings: uploads.UploadSettings) -> int:
    """The size limit a user meets first: ours, or Streamlit's server.maxUploadSize if smaller."""
    return min(settings.max_upload_mb, int(st.get_option("server.maxUploadSize")))


def zip_uploader(settings: uploads.UploadSettings) -> None:
    """A .zip from the user's computer: unpacked once (the uploader keeps its file between reruns)."""
    limit = upload_limit_mb(settings)
    st.caption(t("A .zip with one folder per class (e.g. cats/ and dogs/, each with its images), at most {size} MB "
                 "and {files} files. It is unpacked on this server into a folder of your own, then opened here.",
                 size=fmt_int(limit), files=fmt_int(settings.max_files)))
    zip_file = st.file_uploader(t("Dataset .zip"), type=["zip"], key="dataset_zip", max_upload_size=limit)
    if zip_file is None:
        return
    done = st.session_state.get(UNPACKED)
    if done and done[0] == zip_file.file_id:
        if done[1] is not None:  # the refusal stays in view while its file is in the uploader
            st.error(widgets.plain(i18n.tm(done[1])))
        return
    error = unpack_and_open(zip_file, zip_file.name, settings)
    st.session_state[UNPACKED] = (zip_file.file_id, error)
    if error is None:
        st.rerun()  # the page again, with the uploaded dataset as the current one
    st.error(widgets.plain(i18n.tm(error)))


def unpack_and_open(zip_file, name: str, settings: uploads.UploadSettings):
    """Unpack the zip into the user's uploads and make it the current dataset; the refusal's
    core.messages.Message, or None when it worked."""
    bar = st.progress(0.0, text=t("Unpacking {name}…", name=widgets.plain(name)))
    try:
        path = uploads.unpack(zip_file, name, state.owner_id(), settings,
                              progress=lambda done, total: bar.progress(min(done / max(total, 1), 1.0)))
    except uploads.UploadError as e:
        return e.message
    finally:
        bar.empty()
    forget_scan(path)  # a folder of the same name deleted earlier may still be in the scan cache
    state.choose_dataset(path)
    return None


def uploaded_list(paths: list[str], settings: uploads.UploadSettings) -> None:
    """The user's uploaded datasets: Use makes one the current dataset; Delete asks, then deletes."""
    st.markdown(t("**Your uploaded datasets**"))
    if not paths:
        st.caption(t("None yet."))
        return
    for path in paths:
        name = os.path.basename(path)
        label, use, delete = st.columns([4, 1, 1])
        label.markdown(widgets.plain(name))
        if use.button(t("Use"), key=f"upload_use_{name}", disabled=path == state.dataset_path()):
            state.choose_dataset(path)
            st.rerun()
        if delete.button(t("Delete"), key=f"upload_delete_{name}"):
            st.session_state[CONFIRM_DELETE] = path
        if st.session_state.get(CONFIRM_DELETE) == path:
            confirm_delete(path, settings)


def confirm_delete(path: str, settings: uploads.UploadSettings) -> None:
    """The second step of Delete: the dataset and its images are gone for good."""
    st.warning(t("Delete {name} and all its images from the server? This cannot be undone.",
                 name=widgets.plain(os.path.basename(path))))
    yes, no = st.columns(2)
    if yes.button(t("Yes, delete"), key="upload_delete_yes", type="primary"):
        st.session_state.pop(CONFIRM_DELETE, None)
        try:
            uploads.delete_upload(state.owner_id(), path, settings)
        except uploads.UploadError as e:
            st.error(widgets.plain(i18n.error_text(e)))
            return
        forget_scan(path)
        if state.dataset_path() == path:
            state.choose_dataset(cache.sample_folder())
        st.rerun()
    if no.button(t("Cancel"), key="upload_delete_no"):
        st.session_state.pop(CONFIRM_DELETE, None)
        st.rerun()


def forget_scan(path: str) -> None:
    """Drop the cached scan of a folder with the current split settings."""
    cache.scan_dataset.clear(path, *state.split_settings())
