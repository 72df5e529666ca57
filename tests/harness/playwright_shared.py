"""One Playwright driver per test process, shared by every harness that drives chromium (lab.py, frontends.py).

Playwright's sync API refuses a second ``sync_playwright().start()`` in the same thread ("using Playwright Sync API
inside the asyncio loop"), so the JupyterLab harness and the Notebook 7 / Voila harnesses each ``acquire()`` the one
driver (started on first use) and ``release()`` it when they stop; it stops when the last one lets go. Each harness
still launches its own chromium from it.
"""
from __future__ import annotations

_driver = None
_users = 0


def acquire():
    """The shared Playwright object (``.chromium.launch(...)``), started on first use."""
    global _driver, _users
    if _driver is None:
        from playwright.sync_api import sync_playwright

        _driver = sync_playwright().start()
    _users += 1
    return _driver


def release() -> None:
    """Let go of the driver; the last harness to let go stops it."""
    global _driver, _users
    _users = max(0, _users - 1)
    if _users == 0 and _driver is not None:
        try:
            _driver.stop()
        finally:
            _driver = None
