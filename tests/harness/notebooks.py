"""Run notebooks headless with nbclient, as tests/test_notebooks.py does.

``notebook_paths() -> list[Path]``  every ``notebooks/*.ipynb`` (sorted; checkpoints excluded), found at import time.
``run_notebook(path, timeout=600, kernel_name=env.KERNEL_NAME, cwd=None, test_sizes=True) -> NotebookNode``
    ``nbclient.NotebookClient(nb, kernel_name=..., timeout=timeout, resources={"metadata": {"path": cwd}})``
    with ``cwd`` defaulting to the notebook's folder; raises ``nbclient.exceptions.CellExecutionError`` (with the
    cell's traceback) on any cell error. The executed notebook is written to ``tests/_artifacts/<name>.failed.ipynb``
    when it fails. Each notebook gets its own fresh kernel (not the shared ``kernel`` fixture): notebooks must run
    top to bottom from a clean state. The kernelspec ``python3`` runs ``sys.executable`` (see harness/env.py: a
    temp kernelspec dir put first on JUPYTER_PATH, nothing is installed into the venv or ~).

Test sizes: with ``test_sizes`` (the default) the kernel's environment has ``CNNWIDGET_NOTEBOOK_TEST=1``
(:data:`TEST_SIZES_VAR`). A notebook whose full size costs the suite minutes reads it in a cell, says so there, and
runs that cell's data on fewer images (the user, without the variable, gets the full size); every other cell is the
same code. Which notebooks do, and what is then not run at full size by the suite:

* dataset_examples: 2,000 demo images instead of 10,000 (the passes' time grows with the count).

``test_sizes=False`` runs a notebook exactly as a user does (e.g. ``python -c "from harness.notebooks import *;
run_notebook('notebooks/dataset_examples.ipynb', test_sizes=False)"`` from tests/).
"""
from __future__ import annotations

import os
from pathlib import Path

from . import env

#: the environment variable the notebooks' size cells read (set only for the suite's runs)
TEST_SIZES_VAR = "CNNWIDGET_NOTEBOOK_TEST"


def notebook_paths() -> list[Path]:
    if not env.NOTEBOOKS.is_dir():
        return []
    return sorted(p for p in env.NOTEBOOKS.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def run_notebook(path: Path | str, timeout: int = 600, kernel_name: str = env.KERNEL_NAME,
                 cwd: Path | str | None = None, test_sizes: bool = True):
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=timeout,
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    kernel_env = {k: v for k, v in os.environ.items() if k != TEST_SIZES_VAR}
    if test_sizes:
        kernel_env[TEST_SIZES_VAR] = "1"
    try:
        client.execute(env=kernel_env)
    except BaseException:
        try:
            nbformat.write(nb, str(env.artifacts_dir() / f"{path.stem}.failed.ipynb"))
        except Exception:
            pass
        raise
    return nb
