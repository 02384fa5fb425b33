"""Keep Streamlit's after-run housekeeping away from a training that runs in this process.

After every script run, and a live page reruns a fragment every second, Streamlit
1. calls keras.backend.clear_session(): that swaps Keras' global (thread-local) state and clears
   TensorFlow's kernel cache under the training thread, so every step rebuilds its kernels;
2. runs a full gc.collect(2) over a heap that holds TensorFlow (switched off in
   .streamlit/config.toml with runner.postScriptGC = false).
Training in a background thread is the design (PRODUCT.md), so the first is replaced here by the
same cleanup minus Keras.
"""
from __future__ import annotations

import sys


def _clean_problem_modules_except_keras() -> None:
    """Streamlit's own cleanup, without keras.backend.clear_session()."""
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def keep_keras_state() -> None:
    """Stop Streamlit from clearing the Keras session after each run (idempotent)."""
    from streamlit.runtime.scriptrunner import script_runner

    script_runner._clean_problem_modules = _clean_problem_modules_except_keras


def keras_state_kept() -> bool:
    from streamlit.runtime.scriptrunner import script_runner

    return script_runner._clean_problem_modules is _clean_problem_modules_except_keras
