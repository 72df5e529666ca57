"""Every notebooks/*.ipynb runs top to bottom headless (nbclient), each in a fresh kernel running sys.executable.

Notebooks are collected at import time; with none yet, the single test is skipped with a reason. The kernelspec
(`python3`, pointed at sys.executable by tests/harness/env.py through JUPYTER_PATH) and the runner are in
tests/harness/notebooks.py. A failing notebook is saved executed to tests/_artifacts/<name>.failed.ipynb.
The kernel has CNNWIDGET_NOTEBOOK_TEST=1: a notebook whose full size costs the suite minutes runs a cell's data on
fewer images, said in that cell (harness/notebooks.py lists which, and what is then not run at full size).
"""
from __future__ import annotations

import pytest

from harness.notebooks import notebook_paths, run_notebook

_PATHS = notebook_paths()
_PARAMS = [pytest.param(p, id=p.stem) for p in _PATHS] or [
    pytest.param(None, id="no-notebooks", marks=pytest.mark.skip(reason="no notebooks in notebooks/ yet"))
]


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("path", _PARAMS)
def test_notebook_runs_headless(path):
    run_notebook(path, timeout=600)
