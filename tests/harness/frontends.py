"""Jupyter Notebook 7 and Voila for browser tests: ONE server of each per test run, started by the first test that
asks for it (fixtures ``notebook7`` and ``voila`` in tests/conftest.py), stopped at the end of the run.

Both harnesses are :class:`harness.lab.LabHarness` with another server behind them, so everything the JupyterLab
harness offers on a page works the same where the front end allows it: console errors fail the test (``cleanup``
after each test, ``CONSOLE_NOISE``), ``canvas_pixels``, ``screenshot``, ``wait_for``, pages closed and kernels
stopped after each test. Chromium is launched from the one Playwright driver of the process
(harness/playwright_shared.py), which the JupyterLab harness shares.

``NotebookHarness`` (Jupyter Notebook 7, ``python -m notebook``)
    ``open_notebook(name_or_cells)`` opens ``/notebooks/<path>`` (Notebook 7's one-document page), waits for
    ``.jp-Notebook`` and the kernel idle. Notebook 7 is a JupyterLab-based app started with
    ``--JupyterNotebookApp.expose_app_in_browser=True``, so ``window.jupyterapp`` and the notebook commands exist and
    ``run_all``, ``cell_errors``, ``kernel_exec`` / ``kernel_run``, ``frozen_kernel`` and ``ws_traffic`` work as in
    JupyterLab. Same isolation as the lab harness (temp user settings: no windowing, no autosave; temp workspaces).
    Log: ``tests/_artifacts/notebook7.log``.

``VoilaHarness`` (Voila, ``python -m voila <root>``)
    Voila runs the notebook itself when the page is asked for (nbclient in the server, with the ``python3``
    kernelspec of harness/env.py) and sends the page once every cell has run; there is no notebook UI and no
    ``window.jupyterapp``. ``open_notebook(name_or_cells, wait_selector=None)`` opens ``/voila/render/<path>``
    (``goto`` returns when the executed page has arrived) and waits for ``wait_selector`` if given. ``run_all`` and
    ``kernel_exec`` are refused (the kernel is not reachable from the page's code in Voila);
    ``cell_errors(page)`` lists the error outputs Voila rendered. Log: ``tests/_artifacts/voila.log``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import quote

from . import env
from .lab import INIT_JS, LAB_SETTINGS, LabHarness, _slug, free_port


class _ServerHarness(LabHarness):
    """LabHarness with another Jupyter server: ``_command()``, ``_ready_path`` and ``_page_url()`` differ."""

    name = "server"
    _ready_path = "/"

    def __init__(self, root_dir, port: int | None = None, log_path: Path | None = None):
        super().__init__(root_dir, port=port, log_path=log_path or env.log_path(self.name))

    def _command(self, base: Path) -> list[str]:
        raise NotImplementedError

    def _page_url(self, rel: str) -> str:
        raise NotImplementedError

    def _start_server(self, timeout: float) -> None:
        t0 = time.perf_counter()
        self.root_dir.mkdir(parents=True, exist_ok=True)
        base = (env.SESSION_DIR or env.setup()) / f"{self.name}-{uuid.uuid4().hex[:6]}"
        base.mkdir(parents=True, exist_ok=True)
        self.port = self.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = self._command(base)
        envv = dict(os.environ)
        envv["PATH"] = str(Path(sys.executable).parent) + os.pathsep + envv.get("PATH", os.defpath)
        self._log = open(self.log_path, "wb", buffering=0)
        self._log.write(f"\n===== {time.ctime()} {' '.join(cmd)}\n".encode())
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=envv, cwd=str(self.root_dir), start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + self._ready_path, timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} did not answer on {self.url} in {timeout}s\n{self.log_tail()}")
            time.sleep(0.25)
        self.timings["server"] = time.perf_counter() - t0

    def _new_page(self, rel: str, timeout: float, viewport: dict | None):
        context = self.browser.new_context(viewport=viewport or {"width": 1400, "height": 1000})
        context.add_init_script(INIT_JS)
        context.set_default_timeout(timeout * 1000)
        page = context.new_page()
        self._pages[id(page)] = {"page": page, "context": context, "path": rel}
        tag = f"{self.name}:{rel}"
        page.on("console", lambda m: self._console_write(f"[{tag}] {m.type}: {m.text}"))
        page.on("pageerror", lambda e: self._console_write(f"[{tag}] PAGEERROR: {e}"))
        page.on("console", lambda m: m.type == "error" and self._console_error(f"[{tag}] console error: {m.text}"))
        page.on("pageerror", lambda e: self._known_error(e) or self._console_error(f"[{tag}] page error: {e}"))
        return page

    def _known_error(self, error) -> bool:
        """Whether an uncaught page error is the front end's own, known and harmless (see the subclass)."""
        return False

    def _notebook_path(self, name_or_cells, name: str | None) -> str:
        if isinstance(name_or_cells, (list, tuple)):
            path = self.write_notebook(list(name_or_cells), name)
        else:
            path = self.copy_notebook(name_or_cells)
        return path.relative_to(self.root_dir).as_posix()

    def _failed_open(self, page, rel: str, step: str, exc: Exception):
        shot = ""
        try:
            shot = str(self.screenshot(page, f"open-failed-{self.name}-{_slug(rel)}"))
        except Exception:
            pass
        raise RuntimeError(f"{self.name}: open_notebook({rel}) failed while {step}: {exc}\nscreenshot: {shot}\n"
                           f"{self.log_tail(30)}") from exc


class NotebookHarness(_ServerHarness):
    """Jupyter Notebook 7 (see the module docstring)."""

    name = "notebook7"
    _ready_path = "/tree"
    settings = LAB_SETTINGS

    def _known_error(self, error) -> bool:
        # Notebook 7.6.5 throws this while it loads, on a notebook of one `1+1` cell too, with no cnnwidget code in
        # the page and with any one of its lab extensions disabled: its shortcuts plugin reads
        # `plugins[id].schema` for a plugin id the registry does not hold (notebook_core.js). Only that error, from
        # that file, is let through.
        stack = getattr(error, "stack", "") or ""
        return "reading 'schema'" in str(error) and "notebook_core." in stack

    def _command(self, base: Path) -> list[str]:
        settings_dir, workspaces_dir = base / "user-settings", base / "workspaces"
        for rel, value in self.settings.items():
            p = settings_dir / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(value))
        workspaces_dir.mkdir(parents=True, exist_ok=True)
        return [sys.executable, "-m", "notebook", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
                "--ServerApp.port_retries=0", "--ServerApp.token=", "--ServerApp.password=",
                "--ServerApp.disable_check_xsrf=True", "--allow-root", f"--ServerApp.root_dir={self.root_dir}",
                "--JupyterNotebookApp.expose_app_in_browser=True",
                f"--JupyterNotebookApp.user_settings_dir={settings_dir}",
                f"--JupyterNotebookApp.workspaces_dir={workspaces_dir}"]

    def open_notebook(self, name_or_cells, *, name: str | None = None, timeout: float = 120,
                      viewport: dict | None = None):
        t0 = time.perf_counter()
        rel = self._notebook_path(name_or_cells, name)
        page = self._new_page(rel, timeout, viewport)
        step = "loading Jupyter Notebook 7"
        try:
            page.goto(f"{self.url}/notebooks/{quote(rel)}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook", timeout=timeout * 1000)
            step = "waiting for the notebook's kernel to be idle (a kernel-selection dialog? see the screenshot)"
            page.wait_for_function("(p) => window.__cwKernelIdle(p)", arg=rel, timeout=timeout * 1000,
                                   polling=100)
        except Exception as e:
            self._failed_open(page, rel, step, e)
        self.timings[f"open:{rel}"] = time.perf_counter() - t0
        return page


_VOILA_ERRORS_JS = r"""
() => [...document.querySelectorAll('.jp-OutputArea-output')]
  .filter((o) => o.matches('[data-mime-type="application/vnd.jupyter.stderr"]') && /Error|Traceback/.test(o.textContent)
                 || o.querySelector('.ansi-red-fg, .jp-RenderedText[data-mime-type="application/vnd.jupyter.error"]'))
  .map((o) => o.textContent.slice(0, 2000))
"""


class VoilaHarness(_ServerHarness):
    """Voila (see the module docstring)."""

    name = "voila"
    _ready_path = "/"

    def __init__(self, root_dir, port: int | None = None, log_path: Path | None = None):
        super().__init__(root_dir, port=port, log_path=log_path)
        self.external_requests: list[str] = []

    def _command(self, base: Path) -> list[str]:
        # Notebook 7's own lab extension (its interface switcher) cannot load in Voila 0.5 (Voila does not share
        # @jupyterlab/docregistry with it: a console error on every page wherever both are installed); it has no
        # use in Voila, so it is left out. Nothing of cnnwidget's or of the widget libraries is.
        return [sys.executable, "-m", "voila", "--no-browser", "--Voila.ip=127.0.0.1", f"--Voila.port={self.port}",
                "--Voila.port_retries=0", f"--Voila.root_dir={self.root_dir}",
                "--VoilaConfiguration.show_tracebacks=True",
                "--VoilaConfiguration.extension_denylist=['@jupyter-notebook/lab-extension']", str(self.root_dir)]

    def _new_page(self, rel: str, timeout: float, viewport: dict | None):
        # Voila's lab template links Font Awesome from cdn.jsdelivr.net; with no network that is a console error on
        # every page. Requests that leave the server are answered empty here (as a blocked CDN would leave the
        # page) and listed in `external_requests`, so a test can check nothing of ours needs the network.
        page = super()._new_page(rel, timeout, viewport)

        def offline(route):
            self.external_requests.append(route.request.url)
            route.fulfill(status=200, body="", content_type="text/css" if route.request.url.endswith(".css")
                          else "application/octet-stream")

        page.context.route(lambda url: not url.startswith(self.url) and not url.startswith("blob:")
                           and not url.startswith("data:"), offline)
        return page

    def open_notebook(self, name_or_cells, *, name: str | None = None, timeout: float = 240,
                      viewport: dict | None = None, wait_selector: str | None = None):
        """Voila executes the notebook while it answers the page request, so ``goto`` takes as long as every cell
        (TensorFlow's import included): ``timeout`` covers both."""
        t0 = time.perf_counter()
        rel = self._notebook_path(name_or_cells, name)
        page = self._new_page(rel, timeout, viewport)
        step = "Voila running the notebook and sending the page"
        try:
            page.goto(f"{self.url}/voila/render/{quote(rel)}", wait_until="domcontentloaded",
                      timeout=timeout * 1000)
            if wait_selector:
                step = f"waiting for {wait_selector}"
                page.wait_for_selector(wait_selector, timeout=timeout * 1000)
        except Exception as e:
            self._failed_open(page, rel, step, e)
        self.timings[f"open:{rel}"] = time.perf_counter() - t0
        return page

    def cell_errors(self, page) -> list[str]:
        """The error outputs Voila rendered (texts), [] if none."""
        return page.evaluate(_VOILA_ERRORS_JS)

    def run_all(self, page, timeout: float = 300, raise_on_error: bool = True):
        raise NotImplementedError("Voila runs every cell itself when the page is opened: use open_notebook")

    def kernel_exec(self, page, code: str, timeout: float = 60) -> dict:
        raise NotImplementedError("Voila's page has no handle on the kernel to run code with")
