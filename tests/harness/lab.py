"""ONE JupyterLab server and ONE headless chromium (Playwright) per test run, and helpers to drive notebooks.

Fixture (tests/conftest.py)
---------------------------
``lab``  session-scoped :class:`LabHarness`. Started on first use; any test using it is auto-marked ``browser``.
         After every test that used it, an autouse fixture calls ``lab.cleanup()``: a screenshot of each open page
         if the test failed (``tests/_artifacts/FAIL-*.png``), then every page/context closed and every session
         and kernel of the server shut down over the REST API, so nothing piles up between tests.
         Give browser tests a generous ``@pytest.mark.timeout(300)``.

What runs
---------
``<sys.executable> -m jupyterlab --no-browser --ip=127.0.0.1 --port=<free> --ServerApp.token= --ServerApp.password=
--ServerApp.disable_check_xsrf=True --allow-root --ServerApp.root_dir=<tmp root> --LabApp.expose_app_in_browser=True``
plus isolation flags (temp user-settings and workspaces dirs, no update check). ``-m jupyterlab`` is the same app as
``-m jupyter lab`` but cannot pick up another environment's ``jupyter-lab`` script from PATH. Server output goes to
``tests/_artifacts/jupyterlab.log``; if it does not answer, the error carries the log tail. Lab user settings set for
tests: notebook ``windowingMode: "none"`` (every cell attached to the DOM, so off-screen widgets render and can be
read back), no autosave, no news / update-check toasts. Notebook kernels use the ``python3`` kernelspec that
harness/env.py points at ``sys.executable``; their cwd is the notebook's folder in the temp root.
Chromium: ``/usr/bin/chromium`` (override with ``CNNWIDGET_CHROMIUM``), headless, with the recipe's flags.
Browser console messages and page errors go to ``tests/_artifacts/browser-console.log``.

API
---
``open_notebook(name_or_cells, *, name=None, timeout=120) -> Page``
    ``name_or_cells``: a notebook in ``notebooks/`` ("quickstart" or "quickstart.ipynb", copied to
    ``<root>/notebooks/``; only the .ipynb is copied), a path to any .ipynb, or a list of code-cell sources
    (written as ``<root>/<name or harness_XXXX>.ipynb`` with the python3 kernelspec). Opens it in a fresh browser
    context at ``/lab/workspaces/<unique>/tree/<path>`` (a fresh workspace, so no tab of an earlier test is
    restored), waits for ``.jp-Notebook`` and for the notebook's kernel to be connected and idle.
``run_all(page, timeout=300, raise_on_error=True) -> list[dict]``
    Clicks into the first cell's editor, runs ``notebook:run-all-cells`` and awaits the command's promise (it
    resolves when every cell has replied), then waits for kernel idle. Returns the error outputs
    ``[{"cell", "ename", "evalue", "traceback"}]``; raises ``AssertionError`` with them if ``raise_on_error``.
``cell_errors(page) -> list[dict]``  the error outputs currently in the notebook model.
``cell(page, index) -> str``  a CSS selector for the notebook's cell ``index`` (a notebook of several widgets of one
    kind, each test reading its own).
``wait_for(page, selector, timeout=60, state="visible") -> Locator``
``canvas_pixels(page, selector="canvas", nth=0, background=None) -> dict``
    ``selector`` matches a ``<canvas>`` or an element containing one. getImageData over the whole canvas ->
    ``{"width", "height", "non_transparent", "non_background", "background", "distinct_colors", "mean_rgba",
    "hash"}``: ``background`` is the given ``[r, g, b, a]`` or else the most frequent pixel value;
    ``distinct_colors`` is capped at 4096; ``hash`` is FNV-1a over the RGBA bytes (compare before/after).
    WebGL canvases are copied through a 2d canvas (blank unless drawn with preserveDrawingBuffer).
``screenshot(page, name, selector=None, full_page=False) -> Path``  PNG in ``tests/_artifacts/``.
``axis_problems(page, root=".jp-Notebook") -> list[str]``  bqplot axis labels over tick labels, titles over ticks,
    labels cut off by the figure's edge, on every chart under ``root``.
``console_errors(clear=True)``, ``check_console()``  browser console errors (``console.error``) and uncaught page
    errors seen since the last check, minus ``CONSOLE_NOISE``; ``cleanup`` fails the test on them (so every browser
    test checks the console).
``kernel_exec(page, code, timeout=60) -> dict``  run code in the notebook's own kernel over its websocket
    (``requestExecute``, not shown in the notebook): ``{"status", "stdout", "stderr", "ename", "evalue",
    "traceback"}``. Handy to read kernel-side widget values from a browser test.
``kernel_run(page, code, timeout=60) -> str``  the same, failing the test on an error; stdout, stripped.
``frozen_kernel(page)``  context manager: the notebook's kernel process is SIGSTOPped for the block (to prove a
    browser-side change needs no kernel), SIGCONTed after.
``shutdown_kernel(page, timeout=60) -> str``  shut the notebook's kernel down as the Kernel menu's "Shut Down Kernel"
    does (the page and its widget views stay); returns its id once the server has no such kernel.
``ws_traffic(page, settle=0.5)``  context manager -> :class:`WsTraffic`, the kernel websocket frames seen while the
    block ran (plus ``settle`` seconds after it). E.g.::

        with lab.ws_traffic(page) as t:
            page.mouse.move(10, 10)
        assert t.comm_msgs("in") == []            # no kernel->browser comm_msg caused by the hover

``ws_log(page) -> list[dict]``  every record so far. ``api(method, path, body=None)``  REST call to the server.
``cleanup(failed_test=None)``, ``start()``, ``stop()``, ``url``, ``root_dir``, ``timings`` (seconds for
``server``, ``browser`` and each ``open:<name>``).

How websocket counting works (and its limits)
---------------------------------------------
An init script (``page.add_init_script``, so it runs before JupyterLab's code) replaces ``window.WebSocket`` with a
subclass whose constructor adds a ``message`` listener and whose ``send`` is wrapped. It therefore sees every frame
whether the app uses ``onmessage`` or ``addEventListener``. Only sockets whose URL contains ``/api/kernels/`` are
recorded. One record per frame; with both of Jupyter's kernel websocket protocols one frame is one Jupyter message:

* ``v1.kernel.websocket.jupyter.org`` (what JupyterLab 4 negotiates with jupyter_server 2): binary frames
  ``[n:u64 LE][n offsets:u64 LE][channel][header][parent_header][metadata][content][buffers...]``; the record
  decodes channel and header (msg_type), and the content JSON only for ``comm_*`` messages (comm_id,
  data.method); ``nbuffers`` and ``bytes`` (the whole frame) are counted;
* the legacy protocol: JSON text frames, or binary frames ``[nbufs:u32 BE][offsets:u32 BE][json][buffers]``.

A record: ``{"dir": "in"|"out", "t" (ms, performance.now), "url", "protocol", "kind": "binary"|"text"|"blob",
"bytes", "channel", "msg_type", "comm_id", "method", "nbuffers"}`` (``"error"`` if it could not be decoded;
``blob`` frames cannot be decoded synchronously and only count). Limits: it counts what reached the page, not
what the kernel sent (messages dropped by the server's rate limits are not seen); anything the kernel does
not send over the websocket (e.g. widget state fetched with ``comm_info``) is only seen as those requests; every
browser->kernel update of a synced trait is *echoed* by ipywidgets 8 as an ``echo_update`` comm_msg, so to assert
"the kernel pushed nothing" count ``method="update"`` (or exclude ``echo_update``), not all comm_msgs; status
busy/idle messages arrive for every request the page makes, so count by msg_type; and ``settle`` must cover the
latency of what you expect (a kernel reply usually takes < 100 ms, a worker thread longer).
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from . import env

CHROMIUM = os.environ.get("CNNWIDGET_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]

LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                        "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
}

# Browser console errors that fail no test (``LabHarness.check_console``): each one with why it is harmless.
CONSOLE_NOISE: list[str] = [
]

INIT_JS = r"""
(() => {
  if (window.__cwWS) return;
  const NativeWS = window.WebSocket;
  const log = [];
  const dec = new TextDecoder();
  const json = (u8) => JSON.parse(dec.decode(u8));
  function fill(rec, channel, header, contentBytes, nbuffers) {
    rec.channel = channel;
    rec.msg_type = header ? (header.msg_type || null) : null;
    rec.nbuffers = nbuffers;
    if (rec.msg_type && rec.msg_type.startsWith('comm_') && contentBytes) {
      const parsed = typeof contentBytes === 'object' && !(contentBytes instanceof Uint8Array);
      const c = parsed ? contentBytes : json(contentBytes);
      rec.comm_id = c.comm_id || null;
      rec.method = (c.data && c.data.method) || null;
    }
  }
  function record(ws, dir, data) {
    const rec = {dir, t: performance.now(), url: ws.url, protocol: ws.protocol, kind: '', bytes: 0,
                 channel: null, msg_type: null, comm_id: null, method: null, nbuffers: 0};
    try {
      if (typeof data === 'string') {
        rec.kind = 'text'; rec.bytes = data.length;
        const m = JSON.parse(data);
        fill(rec, m.channel || null, m.header || {msg_type: m.msg_type}, m.content || null, (m.buffers || []).length);
      } else if (data instanceof Blob) {
        rec.kind = 'blob'; rec.bytes = data.size;
      } else {
        const buf = data instanceof ArrayBuffer ? data
          : data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
        rec.kind = 'binary'; rec.bytes = buf.byteLength;
        const dv = new DataView(buf);
        if (ws.protocol === 'v1.kernel.websocket.jupyter.org') {
          const n = Number(dv.getBigUint64(0, true));
          const off = [];
          for (let i = 0; i < n; i++) off.push(Number(dv.getBigUint64(8 * (i + 1), true)));
          const part = (i) => new Uint8Array(buf, off[i], off[i + 1] - off[i]);
          const channel = dec.decode(part(0));
          const header = json(part(1));
          fill(rec, channel, header, part(4), Math.max(0, n - 6));
        } else {
          const nbufs = dv.getUint32(0, false);
          const off = [];
          for (let i = 0; i < nbufs; i++) off.push(dv.getUint32(4 * (i + 1), false));
          const end = nbufs > 1 ? off[1] : buf.byteLength;
          const m = json(new Uint8Array(buf, off[0], end - off[0]));
          fill(rec, m.channel || null, m.header, m.content || null, nbufs - 1);
        }
      }
    } catch (e) { rec.error = String(e); }
    log.push(rec);
  }
  class CountingWebSocket extends NativeWS {
    constructor(...args) {
      super(...args);
      this.__cwKernel = String(args[0]).includes('/api/kernels/');
      if (this.__cwKernel) this.addEventListener('message', (ev) => record(this, 'in', ev.data));
    }
    send(data) {
      if (this.__cwKernel) record(this, 'out', data);
      return super.send(data);
    }
  }
  window.WebSocket = CountingWebSocket;
  window.__cwWS = {log, native: NativeWS};

  window.__cwPanel = (path) => {
    const app = window.jupyterapp;
    if (!app) return null;
    for (const w of app.shell.widgets('main')) {
      if (w.context && w.context.path === path) return w;
    }
    return null;
  };
  window.__cwKernelIdle = (path) => {
    const p = window.__cwPanel(path);
    const k = p && p.sessionContext && p.sessionContext.session && p.sessionContext.session.kernel;
    return !!(k && k.connectionStatus === 'connected' && k.status === 'idle' && !p.sessionContext.pendingInput);
  };
})();
"""

_PIXELS_JS = r"""
([sel, nth, bg]) => {
  const els = document.querySelectorAll(sel);
  const el = els[nth];
  if (!el) return null;
  let c = el.tagName === 'CANVAS' || el.tagName === 'IMG' ? el : el.querySelector('canvas, img');
  if (!c) return null;
  if (c.tagName === 'IMG') {  // a small picture shown as an image (js/dom.js pictureImg): its pixels, one for one
    const copy = document.createElement('canvas');
    copy.width = c.complete ? c.naturalWidth : 0; copy.height = c.complete ? c.naturalHeight : 0;
    if (copy.width) copy.getContext('2d').drawImage(c, 0, 0);
    c = copy;
  }
  const w = c.width, h = c.height;
  if (!w || !h) return {width: w, height: h, non_transparent: 0, non_background: 0, background: null,
                         distinct_colors: 0, mean_rgba: [0, 0, 0, 0], hash: '00000000'};
  let ctx = null;
  try { ctx = c.getContext('2d'); } catch (e) { ctx = null; }
  if (!ctx) {
    const copy = document.createElement('canvas'); copy.width = w; copy.height = h;
    ctx = copy.getContext('2d'); ctx.drawImage(c, 0, 0);
  }
  const data = ctx.getImageData(0, 0, w, h).data;
  const px = new Uint32Array(data.buffer, data.byteOffset, w * h);
  const counts = new Map();
  let nonTransparent = 0, hash = 0x811c9dc5;
  const sum = [0, 0, 0, 0];
  for (let i = 0; i < px.length; i++) {
    const v = px[i];
    counts.set(v, (counts.get(v) || 0) + 1);
    if (data[4 * i + 3] !== 0) nonTransparent++;
    for (let j = 0; j < 4; j++) { const b = data[4 * i + j]; sum[j] += b; hash = Math.imul(hash ^ b, 0x01000193); }
  }
  let bgv;
  if (bg) { bgv = new Uint32Array(new Uint8ClampedArray(bg).buffer)[0]; }
  else { let best = -1; for (const [v, n] of counts) if (n > best) { best = n; bgv = v; } }
  const nonBg = px.length - (counts.get(bgv) || 0);
  const b = new Uint8Array(new Uint32Array([bgv]).buffer);
  return {width: w, height: h, non_transparent: nonTransparent, non_background: nonBg,
          background: [b[0], b[1], b[2], b[3]], distinct_colors: Math.min(counts.size, 4096),
          mean_rgba: sum.map((s) => s / px.length), hash: (hash >>> 0).toString(16).padStart(8, '0')};
}
"""

_AXES_JS = r"""
(root) => {
  // For every bqplot figure under root: axis labels that overlap a tick label or the title, and tick or axis labels
  // that stick out of the figure's svg (cut off).
  const problems = [];
  const box = (el) => el.getBoundingClientRect();
  const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  for (const fig of document.querySelectorAll(root + ' .bqplot')) {
    const svg = fig.querySelector('svg');
    if (!svg || !svg.getBoundingClientRect().width) continue;
    const name = (fig.querySelector('.mainheading')?.textContent || '') + ' ' + [...fig.classList].join('.');
    const outer = box(svg);
    const ticks = [...fig.querySelectorAll('g.axis .tick text')].filter((t) => t.textContent && box(t).width);
    const labels = [...fig.querySelectorAll('g.axis text.axislabel')].filter((t) => t.textContent && box(t).width);
    const title = fig.querySelector('.mainheading');
    for (const label of labels) {
      for (const t of ticks) {
        if (hit(box(label), box(t))) problems.push(`${name}: label "${label.textContent}" covers tick "${t.textContent}"`);
      }
    }
    for (const t of [...ticks, ...labels]) {
      const b = box(t);
      if (b.left < outer.left - 1 || b.right > outer.right + 1 || b.top < outer.top - 1 || b.bottom > outer.bottom + 1) {
        problems.push(`${name}: "${t.textContent}" is cut off`);
      }
      if (title && title.textContent && hit(box(title), b)) problems.push(`${name}: title covers "${t.textContent}"`);
    }
  }
  return problems;
}
"""

_ERRORS_JS = r"""
(path) => {
  const p = window.__cwPanel(path);
  if (!p) return [{cell: -1, ename: 'HarnessError', evalue: 'notebook panel not found: ' + path, traceback: ''}];
  const cells = p.content.model.cells, errs = [];
  for (let i = 0; i < cells.length; i++) {
    const c = cells.get(i);
    if (c.type !== 'code') continue;
    for (const o of c.outputs.toJSON()) {
      if (o.output_type === 'error') errs.push({cell: i, ename: o.ename, evalue: o.evalue,
                                                 traceback: (o.traceback || []).join('\n')});
    }
  }
  return errs;
}
"""

_RUN_ALL_JS = r"""
async ([path, ms]) => {
  const p = window.__cwPanel(path);
  if (!p) throw new Error('notebook panel not found: ' + path);
  await p.sessionContext.ready;
  window.jupyterapp.shell.activateById(p.id);
  const run = window.jupyterapp.commands.execute('notebook:run-all-cells');
  const timeout = new Promise((_, rej) => setTimeout(() => rej(new Error('run-all-cells timed out')), ms));
  return await Promise.race([run, timeout]);
}
"""

_KERNEL_EXEC_JS = r"""
async ([path, code, ms]) => {
  const p = window.__cwPanel(path);
  const k = p.sessionContext.session.kernel;
  const out = {status: null, stdout: '', stderr: '', ename: null, evalue: null, traceback: null};
  const f = k.requestExecute({code, silent: false, store_history: false, allow_stdin: false, stop_on_error: false});
  f.onIOPub = (msg) => {
    const t = msg.header.msg_type;
    if (t === 'stream') out[msg.content.name === 'stderr' ? 'stderr' : 'stdout'] += msg.content.text;
    if (t === 'error') { out.ename = msg.content.ename; out.evalue = msg.content.evalue;
                         out.traceback = msg.content.traceback.join('\n'); }
  };
  const timeout = new Promise((_, rej) => setTimeout(() => rej(new Error('kernel_exec timed out')), ms));
  const reply = await Promise.race([f.done, timeout]);
  out.status = reply.content.status;
  return out;
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)[-120:]


@dataclass
class WsTraffic:
    """Kernel websocket records seen during a ``ws_traffic`` block (see the module docstring)."""

    records: list = field(default_factory=list)

    @property
    def received(self) -> list[dict]:
        return [r for r in self.records if r["dir"] == "in"]

    @property
    def sent(self) -> list[dict]:
        return [r for r in self.records if r["dir"] == "out"]

    def select(self, direction: str | None = None, msg_type: str | None = None, comm_id: str | None = None,
               method: str | None = None) -> list[dict]:
        return [r for r in self.records
                if (direction is None or r["dir"] == direction)
                and (msg_type is None or r["msg_type"] == msg_type)
                and (comm_id is None or r["comm_id"] == comm_id)
                and (method is None or r["method"] == method)]

    def comm_msgs(self, direction: str | None = "in", comm_id: str | None = None,
                  method: str | None = None) -> list[dict]:
        """comm_msg frames; direction "in" = kernel->browser, "out" = browser->kernel, None = both."""
        return self.select(direction, "comm_msg", comm_id, method)

    def bytes(self, direction: str = "in", msg_type: str | None = None) -> int:
        return sum(r["bytes"] for r in self.select(direction, msg_type))

    def summary(self) -> dict:
        out: dict[str, int] = {}
        for r in self.records:
            key = f"{r['dir']}:{r['msg_type']}" + (f":{r['method']}" if r["method"] else "")
            out[key] = out.get(key, 0) + 1
        return out

    def __repr__(self) -> str:
        return f"WsTraffic({self.summary()})"


class LabHarness:
    def __init__(self, root_dir: Path | str, port: int | None = None, log_path: Path | None = None,
                 settings: dict | None = None):
        """``settings``: Lab user settings merged over ``LAB_SETTINGS`` per file (a benchmark measuring what a
        user's JupyterLab does passes the notebook tracker's default ``windowingMode`` back)."""
        self.root_dir = Path(root_dir)
        self.settings = {rel: {**LAB_SETTINGS.get(rel, {}), **value} for rel, value in (settings or {}).items()}
        self.port = port
        self.log_path = log_path or env.log_path("jupyterlab")
        self.console_log_path = env.log_path("browser-console")
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self.timings: dict[str, float] = {}
        self._pw = None
        self.browser = None
        self._pages: dict[int, dict] = {}
        self._log = None
        self._console = None
        self._console_errors: list[str] = []  # console errors and page errors not yet checked (check_console)

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 180) -> "LabHarness":
        try:
            self._start_server(timeout)
            self._start_browser()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_server(self, timeout: float) -> None:
        t0 = time.perf_counter()
        self.root_dir.mkdir(parents=True, exist_ok=True)
        base = (env.SESSION_DIR or env.setup()) / f"lab-{uuid.uuid4().hex[:6]}"
        settings_dir, workspaces_dir = base / "user-settings", base / "workspaces"
        for rel, value in {**LAB_SETTINGS, **self.settings}.items():
            p = settings_dir / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(json.dumps(value))
        workspaces_dir.mkdir(parents=True, exist_ok=True)
        # page_config overrides are read from <JUPYTER_CONFIG_DIR>/labconfig (a temp dir, see env.py): no build check
        labconfig = Path(os.environ.get("JUPYTER_CONFIG_DIR", base / "config")) / "labconfig"
        labconfig.mkdir(parents=True, exist_ok=True)
        (labconfig / "page_config.json").write_text(json.dumps({"buildCheck": False, "buildAvailable": False}))
        self.port = self.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={self.port}",
               "--ServerApp.port_retries=0", "--ServerApp.token=", "--ServerApp.password=",
               "--ServerApp.disable_check_xsrf=True", "--allow-root", f"--ServerApp.root_dir={self.root_dir}",
               "--LabApp.expose_app_in_browser=True", f"--LabApp.user_settings_dir={settings_dir}",
               f"--LabApp.workspaces_dir={workspaces_dir}",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
               "--LabApp.extension_manager=readonly"]
        envv = dict(os.environ)
        envv["PATH"] = str(Path(sys.executable).parent) + os.pathsep + envv.get("PATH", os.defpath)
        self._log = open(self.log_path, "wb", buffering=0)
        self._log.write(f"\n===== {time.ctime()} {' '.join(cmd)}\n".encode())
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     env=envv, cwd=str(self.root_dir), start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with code {self.proc.returncode}\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + "/lab", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"JupyterLab did not answer on {self.url} in {timeout}s\n{self.log_tail()}")
            time.sleep(0.25)
        self.timings["server"] = time.perf_counter() - t0

    def _start_browser(self) -> None:
        from . import playwright_shared

        t0 = time.perf_counter()
        if not Path(CHROMIUM).exists():
            raise RuntimeError(f"{CHROMIUM} not found: apt-get install -y chromium (never `playwright install`)")
        self._pw = playwright_shared.acquire()  # one driver per process: the Notebook 7 / Voila harnesses share it
        self.browser = self._pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        self._console = open(self.console_log_path, "w", buffering=1, errors="replace")
        self._console.write(f"\n===== {time.ctime()} chromium {self.browser.version}\n")
        self.timings["browser"] = time.perf_counter() - t0

    def stop(self) -> None:
        try:
            self.cleanup()
        except Exception:
            pass
        for closer in (lambda: self.browser and self.browser.close(), lambda: self._pw and playwright_shared.release()):
            try:
                closer()
            except Exception:
                pass
        self.browser = self._pw = None
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.api("POST", "/api/shutdown", timeout=5)
                self.proc.wait(timeout=15)
            except Exception:
                pass
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                if self.proc.poll() is not None:
                    break
                try:
                    os.killpg(self.proc.pid, sig)
                    self.proc.wait(timeout=wait)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        self.proc = None
        for f in (self._log, self._console):
            if f is not None:
                f.close()
        self._log = self._console = None

    def log_tail(self, n: int = 80) -> str:
        try:
            lines = Path(self.log_path).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return f"--- {self.log_path} (tail) ---\n" + "\n".join(lines[-n:])

    def api(self, method: str, path: str, body: dict | None = None, timeout: float = 30):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            raw = r.read()
        return json.loads(raw) if raw else None

    def keep(self, page) -> None:
        """Keep ``page`` (and its notebook's kernel) open across tests until ``release(page)`` or the end of the run:
        for a module whose tests share one notebook that is slow to run."""
        self._pages[id(page)]["kept"] = True

    def release(self, page) -> None:
        """Let the next ``cleanup`` close a page given to ``keep``."""
        self._pages[id(page)]["kept"] = False

    @contextlib.contextmanager
    def kept(self, page):
        """``keep(page)`` for the block, then release and close it: the body of a module-scoped fixture whose tests
        share one notebook (``with lab.kept(page): yield page``)."""
        self.keep(page)
        try:
            yield page
        finally:
            self.release(page)
            self.cleanup()

    def cleanup(self, failed_test: str | None = None) -> None:
        """Close every page this harness opened (screenshotting them first if ``failed_test``), stop their kernels;
        pages given to ``keep`` are screenshotted on failure but stay open, with their kernels. Then fail (unless
        the test failed already) on the browser console errors seen during the test (``check_console``); what the
        pages log while they close is not the test's doing and is dropped."""
        errors = self.console_errors()
        try:
            self._close_pages(failed_test)
        finally:
            self.console_errors()  # the noise of closing pages and stopping kernels
            self._console_errors.extend([] if failed_test else errors)
            self.check_console()

    def _close_pages(self, failed_test: str | None = None) -> None:
        kept_paths = {info["path"] for info in self._pages.values() if info.get("kept")}
        for i, info in enumerate(list(self._pages.values())):
            page = info["page"]
            if failed_test:
                try:
                    self.screenshot(page, f"FAIL-{_slug(failed_test)}-{i}")
                except Exception:
                    pass
            if info.get("kept"):
                continue
            try:
                info["context"].close()
            except Exception:
                pass
            del self._pages[id(page)]
        if not self.url or self.proc is None or self.proc.poll() is not None:
            return
        try:
            kept_kernels = set()
            for s in self.api("GET", "/api/sessions"):
                if s.get("path") in kept_paths or s.get("notebook", {}).get("path") in kept_paths:
                    kept_kernels.add(s["kernel"]["id"])
                    continue
                try:
                    self.api("DELETE", f"/api/sessions/{s['id']}")
                except Exception:
                    pass
            for k in self.api("GET", "/api/kernels"):
                if k["id"] in kept_kernels:
                    continue
                try:
                    self.api("DELETE", f"/api/kernels/{k['id']}")
                except Exception:
                    pass
        except Exception:
            pass

    # ------------------------------------------------------------------ notebooks
    def write_notebook(self, cells: list, name: str | None = None) -> Path:
        import nbformat

        name = name or f"harness_{uuid.uuid4().hex[:8]}"
        if not name.endswith(".ipynb"):
            name += ".ipynb"
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": env.KERNEL_NAME, "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        nb.cells = [c if isinstance(c, dict) else nbformat.v4.new_code_cell(c) for c in cells]
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, str(path))
        return path

    def copy_notebook(self, name: str | Path) -> Path:
        src = Path(name)
        if not src.suffix == ".ipynb":
            src = src.with_name(src.name + ".ipynb")
        if not src.is_absolute():
            src = env.REPO / src if (env.REPO / src).exists() else env.NOTEBOOKS / src
        if not src.exists():
            raise FileNotFoundError(src)
        dst = self.root_dir / "notebooks" / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
        return dst

    def _path(self, page) -> str:
        return self._pages[id(page)]["path"]

    def open_notebook(self, name_or_cells, *, name: str | None = None, timeout: float = 120,
                      viewport: dict | None = None):
        t0 = time.perf_counter()
        if isinstance(name_or_cells, (list, tuple)):
            path = self.write_notebook(list(name_or_cells), name)
        else:
            path = self.copy_notebook(name_or_cells)
        rel = path.relative_to(self.root_dir).as_posix()
        context = self.browser.new_context(viewport=viewport or {"width": 1400, "height": 1000})
        context.add_init_script(INIT_JS)
        context.set_default_timeout(timeout * 1000)
        page = context.new_page()
        self._pages[id(page)] = {"page": page, "context": context, "path": rel}
        tag = rel
        page.on("console", lambda m: self._console_write(f"[{tag}] {m.type}: {m.text}"))
        page.on("pageerror", lambda e: self._console_write(f"[{tag}] PAGEERROR: {e}"))
        page.on("console", lambda m: m.type == "error" and self._console_error(f"[{tag}] console error: {m.text}"))
        page.on("pageerror", lambda e: self._console_error(f"[{tag}] page error: {e}"))
        workspace = f"t{uuid.uuid4().hex[:8]}"
        step = "loading JupyterLab"
        try:
            page.goto(f"{self.url}/lab/workspaces/{workspace}/tree/{quote(rel)}", wait_until="domcontentloaded")
            page.wait_for_selector(".jp-Notebook", timeout=timeout * 1000)
            step = "waiting for the notebook's kernel to be idle (a kernel-selection dialog? see the screenshot)"
            page.wait_for_function("(p) => window.__cwKernelIdle(p)", arg=rel, timeout=timeout * 1000,
                                   polling=100)
        except Exception as e:
            shot = ""
            try:
                shot = str(self.screenshot(page, f"open-failed-{_slug(rel)}"))
            except Exception:
                pass
            raise RuntimeError(f"open_notebook({rel}) failed while {step}: {e}\nscreenshot: {shot}\n"
                               f"{self.log_tail(30)}") from e
        self.timings[f"open:{rel}"] = time.perf_counter() - t0
        return page

    def _console_error(self, line: str) -> None:
        if not any(re.search(pattern, line) for pattern in CONSOLE_NOISE):
            self._console_errors.append(line)

    def console_errors(self, clear: bool = True) -> list[str]:
        """The browser console errors (``console.error``) and uncaught page errors seen since the last call with
        ``clear`` (the autouse ``_lab_cleanup`` fixture clears them after every test), minus ``CONSOLE_NOISE``."""
        errors = list(self._console_errors)
        if clear:
            self._console_errors.clear()
        return errors

    def check_console(self) -> None:
        """Fail with the console errors seen since the last check (see ``console_errors``); ``cleanup`` calls it
        after every browser test, so a view that logs an error fails the test that showed it."""
        errors = self.console_errors()
        if errors:
            shown = "\n".join(e[:500] for e in errors[:20])
            raise AssertionError(f"{len(errors)} browser console error(s) during the test (the full console is in "
                                 f"{self.console_log_path}):\n{shown}")

    def _console_write(self, line: str) -> None:
        if self._console is not None:
            try:
                self._console.write(line + "\n")
            except Exception:
                pass

    def run_all(self, page, timeout: float = 300, raise_on_error: bool = True) -> list[dict]:
        path = self._path(page)
        # The command needs a focused notebook: click into the first code cell's editor (a rendered markdown
        # cell hides its editor, so clicking the very first cell would wait forever).
        page.locator(".jp-Notebook .jp-CodeCell").first.locator(".jp-InputArea-editor").click()
        page.evaluate(_RUN_ALL_JS, [path, int(timeout * 1000)])
        page.wait_for_function("(p) => window.__cwKernelIdle(p)", arg=path, timeout=timeout * 1000, polling=100)
        errors = self.cell_errors(page)
        if errors and raise_on_error:
            text = "\n\n".join(f"cell {e['cell']}: {e['ename']}: {e['evalue']}\n{_strip(e['traceback'])}"
                               for e in errors)
            raise AssertionError(f"errors while running {path}:\n{text}")
        return errors

    def cell_errors(self, page) -> list[dict]:
        return page.evaluate(_ERRORS_JS, self._path(page))

    def cell(self, page, index: int) -> str:
        """A CSS selector for cell ``index`` (0-based, markdown cells counted) of the page's notebook: its node is
        tagged ``data-cw-cell``. For tests that share one notebook of several widgets of a kind, each reading its
        own widget's cell."""
        page.evaluate("([p, i]) => { window.__cwPanel(p).content.widgets[i].node.dataset.cwCell = String(i); }",
                      [self._path(page), index])
        return f'.jp-Notebook .jp-Cell[data-cw-cell="{index}"]'

    def wait_for(self, page, selector: str, timeout: float = 60, state: str = "visible"):
        loc = page.locator(selector).first
        loc.wait_for(state=state, timeout=timeout * 1000)
        return loc

    def canvas_pixels(self, page, selector: str = "canvas", nth: int = 0, background=None) -> dict:
        r = page.evaluate(_PIXELS_JS, [selector, nth, list(background) if background is not None else None])
        if r is None:
            raise LookupError(f"no canvas for selector {selector!r} (index {nth})")
        return r

    def axis_problems(self, page, root: str = ".jp-Notebook") -> list[str]:
        """What a person could not read on the bqplot charts under ``root``: an axis label over a tick label, the
        title over a tick label, a tick or axis label cut off by the figure's edge. [] when every chart is clean."""
        return page.evaluate(_AXES_JS, root)

    def screenshot(self, page, name: str, selector: str | None = None, full_page: bool = False) -> Path:
        path = env.artifacts_dir() / (name if name.endswith(".png") else f"{name}.png")
        if selector:
            page.locator(selector).first.screenshot(path=str(path))
        else:
            page.screenshot(path=str(path), full_page=full_page)
        return path

    def kernel_exec(self, page, code: str, timeout: float = 60) -> dict:
        out = page.evaluate(_KERNEL_EXEC_JS, [self._path(page), code, int(timeout * 1000)])
        if out.get("traceback"):
            out["traceback"] = _strip(out["traceback"])
        return out

    def kernel_run(self, page, code: str, timeout: float = 60) -> str:
        """Run ``code`` in the notebook's kernel and return its stdout, stripped; fail the test on an error."""
        out = self.kernel_exec(page, code, timeout)
        assert out["status"] == "ok", f"{code!r} failed: {out['ename']}: {out['evalue']}\n{out['traceback']}"
        return out["stdout"].strip()

    @contextmanager
    def frozen_kernel(self, page):
        """Stop the notebook's kernel process (SIGSTOP) for the block, then resume it: what the page does meanwhile
        cannot involve the kernel. (Sleeping in a cell proves nothing: JupyterLab 4.6 answers widget messages on a
        kernel subshell thread while the main thread sleeps.)"""
        pid = int(self.kernel_run(page, "import os; print(os.getpid())"))
        os.kill(pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 5
            while not re.search(r"^State:\s+T", Path(f"/proc/{pid}/status").read_text(), re.M):
                assert time.monotonic() < deadline, "the kernel process did not stop"
                time.sleep(0.01)
            yield pid
        finally:
            os.kill(pid, signal.SIGCONT)

    def shutdown_kernel(self, page, timeout: float = 60) -> str:
        """Shut the notebook's kernel down as the Kernel menu's "Shut Down Kernel" does (its session context shuts
        the kernel down, with no dialog); the page, its outputs and widget views stay. Waits until the server lists
        no such kernel and the page has none; returns the kernel's id. What JupyterLab logs while its kernel goes is
        not a widget's doing: read ``console_errors()`` after this call to keep it apart from what a test does next."""
        path = self._path(page)
        kid = page.evaluate("(p) => window.__cwPanel(p).sessionContext.session.kernel.id", path)
        page.evaluate("(p) => window.__cwPanel(p).sessionContext.shutdown()", path)
        deadline = time.monotonic() + timeout
        while any(k["id"] == kid for k in self.api("GET", "/api/kernels")):
            assert time.monotonic() < deadline, f"kernel {kid} still runs {timeout} s after its shutdown"
            time.sleep(0.2)
        page.wait_for_function("(p) => { const s = window.__cwPanel(p).sessionContext;"
                               " return !s.session || !s.session.kernel; }", arg=path, timeout=timeout * 1000)
        return kid

    # ------------------------------------------------------------------ websocket traffic
    def ws_log(self, page) -> list[dict]:
        return page.evaluate("() => window.__cwWS.log")

    @contextmanager
    def ws_traffic(self, page, settle: float = 0.5):
        start = page.evaluate("() => window.__cwWS.log.length")
        t = WsTraffic()
        yield t
        if settle:
            page.wait_for_timeout(settle * 1000)
        t.records = page.evaluate("(i) => window.__cwWS.log.slice(i)", start)


def _strip(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text or "")
