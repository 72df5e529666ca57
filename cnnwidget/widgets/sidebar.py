"""Showing a widget in JupyterLab's right sidebar."""

from __future__ import annotations

from IPython.display import display
from sidecar import Sidecar

_open: dict[str, Sidecar] = {}


def show_in_sidebar(widget, title: str = "cnnwidget", anchor: str = "right") -> Sidecar:
    """Show ``widget`` in a JupyterLab sidebar panel titled ``title`` and return the panel.

    Uses jupyterlab-sidecar (``anchor="right"`` is the right sidebar; "split-right", "tab-after", ... also work).
    Showing again under the same title replaces the earlier panel instead of piling up a new one each time a cell
    is re-run. Close the panel with ``.close()``.
    """
    previous = _open.pop(title, None)
    if previous is not None:
        previous.close()
    panel = Sidecar(title=title, anchor=anchor)
    with panel:
        display(widget)
    _open[title] = panel
    return panel
