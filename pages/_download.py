"""Fetching a data set a suite needs (MNIST in full, Fashion-MNIST) from a page, with a progress bar.

A suite that needs a download says so (``mtl_core.suites.required_download``); until the set is in
the cache, the page says what is missing and offers one button, instead of a run that fails. One
download at a time per server: a second person pressing it meanwhile is told to wait, not given a
second copy of the same 30 MB. Offline, the core's one sentence says what to fetch and where.
"""

from __future__ import annotations

import threading

import streamlit as st

from mtl_core.suites import downloads, required_download


@st.cache_resource(show_spinner=False)
def _download_lock() -> threading.Lock:
    return threading.Lock()


def data_ready(suite_key: str, params: dict, *, key: str) -> bool:
    """True when the suite's data are at hand; otherwise say what is missing, offer the download,
    and return False (True again once it is done: the page reruns)."""
    name = required_download(suite_key, params)
    if name is None or downloads.is_complete(name):
        return True
    data = downloads.dataset(name)
    size_mb = sum(file.size for file in data.files) / 1e6
    st.warning(f"These settings need {data.title} ({size_mb:.0f} MB), which is not downloaded yet. "
               f"Download it once here (it is kept in {downloads.dataset_dir(name)}), or choose another "
               "source or suite.", icon=":material/cloud_download:")
    if st.button(f"Download {data.title}", key=key, icon=":material/download:",
                 help=f"Fetch the {len(data.files)} files of {data.title} from their publishers and "
                      "check them against their published checksums."):
        lock = _download_lock()
        if not lock.acquire(blocking=False):
            st.info("Someone on this server is downloading a data set right now: try again in a minute.")
            return False
        try:
            downloads.download(name, progress=progress_bar(data.title))
        except downloads.DataUnavailable as error:
            st.error(str(error), icon=":material/cloud_off:")
            return False
        finally:
            lock.release()
        st.rerun()
    return False


def progress_bar(title: str) -> downloads.Progress:
    """A progress callback drawing a bar that moves in whole per cents (the download calls back
    for every 64 KiB: 500 messages to the browser for one set, where 100 say the same)."""
    bar = st.progress(0.0, text=f"Downloading {title}…")
    shown = [-1]

    def update(done: int, total: int) -> None:
        percent = 100 if not total else min(100, 100 * done // total)
        if percent != shown[0]:
            shown[0] = percent
            bar.progress(percent / 100, text=f"Downloading {title}: {done / 1e6:.1f} of {total / 1e6:.1f} MB")
    return update
