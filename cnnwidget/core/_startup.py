"""TensorFlow's start-up lines, kept out of the notebook.

Importing TensorFlow and finding its devices writes lines straight to file descriptor 2 from C++ ("All log messages
before absl::InitializeLog() ...", "Could not find cuda drivers ...", "This TensorFlow binary is optimized ...",
"failed call to cuInit ..."). ipykernel forwards descriptor 2 into the cell, so a first cell that imports cnnwidget
showed seven pink lines about hardware the user did not ask about (a first-time user read them as errors).
``import_tensorflow`` imports TensorFlow and Keras and lists the devices with descriptor 2 pointed at a temporary
file, then puts it back: Python exceptions are untouched, and the lines are kept in ``STARTUP_LOG`` (and written
to stderr after all if the import fails). It does nothing when TensorFlow was imported before cnnwidget, and
nothing to the environment (TF_CPP_MIN_LOG_LEVEL stays the user's)."""

from __future__ import annotations

import os
import sys
import tempfile

STARTUP_LOG = ""
"""What TensorFlow wrote to stderr while cnnwidget imported it ("" if it was imported before)."""


def import_tensorflow() -> None:
    global STARTUP_LOG
    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no descriptor 2 to borrow (an embedded interpreter)
        return
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        failed = True
        try:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA's lines come when the devices are first looked for
            failed = False
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            STARTUP_LOG = sink.read().decode("utf-8", "replace")
            if failed and STARTUP_LOG:
                sys.stderr.write(STARTUP_LOG)
