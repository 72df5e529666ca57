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
from contextlib import contextmanager

STARTUP_LOG = ""
"""What TensorFlow wrote to stderr while cnnwidget imported it ("" if it was imported before)."""


@contextmanager
def stderr_captured():
    """Descriptor 2 pointed at a temporary file for the ``with`` block. Yields a list that holds, once the block
    has ended (also by an exception), the bytes written meanwhile; yields None and captures nothing when there is
    no descriptor 2 to borrow (an embedded interpreter). TensorFlow's C++ logs bypass ``sys.stderr``: this is the
    one way to keep them out of a notebook cell."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):
        yield None
        return
    written: list[bytes] = []
    with tempfile.TemporaryFile(mode="w+b") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield written
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            written.append(sink.read())


def import_tensorflow() -> None:
    global STARTUP_LOG
    if "tensorflow" in sys.modules:
        return
    captured = None
    try:
        with stderr_captured() as captured:
            import keras  # noqa: F401
            import tensorflow as tf

            tf.config.list_physical_devices()  # CUDA's lines come when the devices are first looked for
    except BaseException:
        if captured and captured[0]:  # the import failed: what TensorFlow said may be why
            sys.stderr.write(captured[0].decode("utf-8", "replace"))
        raise
    finally:
        STARTUP_LOG = captured[0].decode("utf-8", "replace") if captured else ""
