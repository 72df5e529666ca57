"""The environment every test kernel, notebook run and JupyterLab server inherits.

`setup()` is called once, from tests/conftest.py at import time, before any fixture runs. It:

* sets quiet-output variables (TF_CPP_MIN_LOG_LEVEL=2, TF_ENABLE_ONEDNN_OPTS=0, no CUDA, Agg backend, ...) in
  os.environ, so every child process (kernels, the lab server, nbclient kernels) gets them;
* creates one temp directory per test run (`SESSION_DIR`), removed at exit, holding:
    - `jupyter_path/kernels/python3/kernel.json`, a kernelspec named **python3** whose argv runs `sys.executable`
      (the interpreter running pytest, i.e. the venv's python). `JUPYTER_PATH` is prepended with it, and
      JUPYTER_PATH has the highest priority in kernelspec lookup, so `KernelManager(kernel_name="python3")`,
      `nbclient.NotebookClient(kernel_name="python3")` and notebooks that JupyterLab opens with the usual
      `python3` kernelspec all run this interpreter, whatever is on PATH or in ~/.local/share/jupyter;
    - `config/` (JUPYTER_CONFIG_DIR), `runtime/` (JUPYTER_RUNTIME_DIR) and `ipython/` (IPYTHONDIR), so no user
      config from ~/.jupyter or ~/.ipython leaks in and concurrent kernels do not fight over one IPython history db.

Nothing here imports jupyter, TensorFlow or playwright, so the quick unit set pays nothing for it.
"""
from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
NOTEBOOKS = REPO / "notebooks"
ARTIFACTS = TESTS / "_artifacts"

#: the kernelspec name every harness kernel uses; it is overridden (see module docstring) to run sys.executable.
KERNEL_NAME = "python3"

QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "2",        # no TF INFO/WARNING C++ logs
    "TF_ENABLE_ONEDNN_OPTS": "0",       # no "oneDNN custom operations are on" banner, deterministic numerics
    "CUDA_VISIBLE_DEVICES": "",         # no GPU probing (and its log lines) on CPU-only CI
    "KERAS_BACKEND": "tensorflow",
    "MPLBACKEND": "Agg",
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # silences the debugger's frozen-modules warning in kernels
    "JUPYTER_PLATFORM_DIRS": "1",       # silences jupyter_core's platformdirs deprecation warning
    "PYTHONUNBUFFERED": "1",
}

SESSION_DIR: Path | None = None


def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def log_path(stem: str) -> Path:
    """``tests/_artifacts/<stem>.log`` (``<stem>-<worker>.log`` under pytest-xdist)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    return artifacts_dir() / (f"{stem}-{worker}.log" if worker else f"{stem}.log")


def write_kernelspec(kernels_dir: Path, name: str = KERNEL_NAME, python: str = sys.executable) -> Path:
    d = kernels_dir / name
    d.mkdir(parents=True, exist_ok=True)
    spec = {
        "argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": f"Python 3 (cnnwidget tests: {python})",
        "language": "python",
        "metadata": {"debugger": False},
        "kernel_protocol_version": "5.5",
    }
    (d / "kernel.json").write_text(json.dumps(spec, indent=1))
    return d


def setup() -> Path:
    """Idempotent; returns the session temp dir."""
    global SESSION_DIR
    if SESSION_DIR is not None:
        return SESSION_DIR
    for k, v in QUIET_ENV.items():
        os.environ.setdefault(k, v)
    SESSION_DIR = Path(tempfile.mkdtemp(prefix="cnnwidget-tests-"))
    atexit.register(shutil.rmtree, SESSION_DIR, True)

    jp = SESSION_DIR / "jupyter_path"
    write_kernelspec(jp / "kernels")
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(jp) + (os.pathsep + old if old else "")
    for var, sub in (("JUPYTER_CONFIG_DIR", "config"), ("JUPYTER_RUNTIME_DIR", "runtime"), ("IPYTHONDIR", "ipython")):
        p = SESSION_DIR / sub
        p.mkdir(parents=True, exist_ok=True)
        os.environ[var] = str(p)
    return SESSION_DIR
