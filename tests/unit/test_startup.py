"""A first cell that imports cnnwidget shows no TensorFlow start-up lines (ipykernel forwards descriptor 2 into
the cell: seven pink lines about CUDA and CPU instructions a first-time user read as errors)."""

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_importing_cnnwidget_writes_nothing_to_stderr_and_keeps_tensorflows_lines():
    code = ("import cnnwidget, cnnwidget.core._startup as s, tensorflow as tf; tf.constant(1.0) + 1; "
            "print(len(s.STARTUP_LOG))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    assert int(out.stdout.strip()) > 0  # what TensorFlow said is kept, not lost


@pytest.mark.slow
def test_tensorflow_imported_first_is_left_alone():
    code = ("import tensorflow, cnnwidget.core._startup as s; print(repr(s.STARTUP_LOG))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "''"
