"""Run notebooks headless with nbclient, as tests/test_notebooks.py does.

``notebook_paths() -> list[Path]``  every ``notebooks/*.ipynb`` (sorted; checkpoints excluded), found at import time.
``run_notebook(path, timeout=600, kernel_name=env.KERNEL_NAME, cwd=None) -> NotebookNode``
    ``nbclient.NotebookClient(nb, kernel_name=..., timeout=timeout, resources={"metadata": {"path": cwd}})``
    with ``cwd`` defaulting to the notebook's folder; raises ``nbclient.exceptions.CellExecutionError`` (with the
    cell's traceback) on any cell error. The executed notebook is written to ``tests/_artifacts/<name>.failed.ipynb``
    when it fails. Each notebook gets its own fresh kernel (not the shared ``kernel`` fixture): notebooks must run
    top to bottom from a clean state. The kernelspec ``python3`` runs ``sys.executable`` (see harness/env.py: a
    temp kernelspec dir put first on JUPYTER_PATH, nothing is installed into the venv or ~).
"""
from __future__ import annotations

from pathlib import Path

from . import env


def notebook_paths() -> list[Path]:
    if not env.NOTEBOOKS.is_dir():
        return []
    return sorted(p for p in env.NOTEBOOKS.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def run_notebook(path: Path | str, timeout: int = 600, kernel_name: str = env.KERNEL_NAME,
                 cwd: Path | str | None = None):
    import nbformat
    from nbclient import NotebookClient

    path = Path(path)
    nb = nbformat.read(str(path), as_version=4)
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=timeout,
                            resources={"metadata": {"path": str(cwd or path.parent)}})
    try:
        client.execute()
    except BaseException:
        try:
            nbformat.write(nb, str(env.artifacts_dir() / f"{path.stem}.failed.ipynb"))
        except Exception:
            pass
        raise
    return nb
