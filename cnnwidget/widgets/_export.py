"""Keep and share what a widget shows: a self-contained HTML file, a PNG of its canvases, its arrays as NPZ.

Called from small methods on the base (``CnnWidget.export_html``, ``save_png``, ``to_numpy``, ``save_npz``), so
every widget, including ones added later, gets them with no code of its own.

``export_html``: ``ipywidgets.embed`` cannot embed anywidget widgets (anywidget#339: its embed manager fetches
modules from a CDN and has no loader for ``_esm``). The file written here holds

- the widget's state and that of every child widget it references (bqplot figures and their marks, scales and
  axes, ipywidgets boxes), as JSON, with their binary buffers (the wire's uint8 tiles, float32 ranges, bqplot
  arrays) base64-encoded (4/3 of their raw size),
- the ES module of each anywidget model (the ``_esm`` string, already one bundled module),
- when a child widget is not an anywidget (bqplot, ipywidgets controls), the JavaScript that draws it, taken from
  the installed packages (``share/jupyter/nbextensions``: widgetsnbextension's ipywidgets bundle, bqplot's and
  bqscales'), never from a CDN,
- js/export_amd.js (a small AMD loader for those bundles) and js/export_shim.js: a model with the part of the
  anywidget model API our views use (``get``, ``set``, ``on``/``off``, ``save_changes``, ``send``,
  ``widget_manager.get_model``/``create_view``) and a widget manager that builds the child models and views, then
  calls each module's ``render()``.

Interactions that only the browser computes (colour map, normalization, opacity, overlay, hover values) work in
the file. ``variants=[{"layer": ...}, {"page": 1}]`` holds other settings too (computed at export, then the widget
is put back); choosing one in the page shows it. Any other change that needs the kernel (another layer, image,
page, method, a Compute click, a child control Python follows) is put back and the page says the kernel is
needed: a static file never shows an old result under a new label. A child widget whose JavaScript is not
installed is named in the file and in a Python warning, never dropped silently.

``save_png``: the view (every widget's ``_esm`` is wrapped with js/export_tools.js by the base) composes its
canvases at their own resolution and sends the PNG back through the widget's comm.

``to_numpy``: what the widget holds, as the widget declares it (``CnnWidget._holds``): by default every synced
binary trait (the exact bytes drawn) and every public array (or dict of arrays) it exposes, in full precision
(``default_holds``), plus the settings that made them (every synced non-binary trait: seed, method, options,
layer, ...), the widget's class and model name.
"""

from __future__ import annotations

import base64
import json
import re
import sys
import threading
import time
import warnings
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from ._esm import js_dir

EXPORT_FORMAT = 1
PNG_ACTION = "cnnw_save_png"
PNG_TIMEOUT = 60.0  # seconds a save_png request waits for the page

# Trait names whose change the page draws with no kernel (a view re-colours or re-blends what it holds). Every other
# trait the page may set needs the kernel: in an exported file such a change is put back and the view says so.
# A widget may widen or narrow this with a class attribute ``_static_traits``.
STATIC_TRAITS = frozenset({"colormap", "normalization", "opacity", "overlay", "overlay_opacity"})

# The installed JavaScript bundles (classic-notebook AMD modules) that draw non-anywidget children.
# model module -> (AMD name, file under share/jupyter/nbextensions)
_WIDGETS_BUNDLE = ("@jupyter-widgets/extension", "jupyter-js-widgets/extension.js")
_LIBRARIES = {
    "@jupyter-widgets/base": _WIDGETS_BUNDLE,
    "@jupyter-widgets/controls": _WIDGETS_BUNDLE,
    "@jupyter-widgets/output": _WIDGETS_BUNDLE,
    "bqplot": ("bqplot", "bqplot/index.js"),
    "bqscales": ("bqscales", "bqscales/index.js"),
}
_ANYWIDGET = "anywidget"


class ExportError(RuntimeError):
    """An export that cannot be made as asked (no displayed view for a PNG, a closed widget)."""


# -- the state of a widget tree -------------------------------------------------------------------------------------

_REF = re.compile(r"^IPY_MODEL_([0-9a-f]{32})$")


def _refs(value):
    """The model ids referenced (``"IPY_MODEL_<id>"``) anywhere in a JSON state value."""
    if isinstance(value, str):
        m = _REF.match(value)
        if m:
            yield m.group(1)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _refs(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _refs(v)


def _b64(buffer) -> str:
    return base64.b64encode(bytes(buffer)).decode("ascii")


def collect_models(root) -> tuple[dict, int]:
    """Every model the root's view needs, by id: {id: {model_name, model_module, model_module_version, state,
    buffers: [{path, data (base64)}]}}; and the raw bytes of their buffers. An anywidget's own ``layout`` and
    ``style`` are left out (the shim draws the module into a plain element)."""
    import ipywidgets
    from ipywidgets.widgets.widget import _remove_buffers

    instances = _reachable(root)  # id -> widget, every widget held in the root's synced traits, recursively
    models: dict[str, dict] = {}
    raw = 0
    todo = [root.model_id]
    while todo:
        model_id = todo.pop()
        if model_id in models:
            continue
        widget = instances.get(model_id)
        if widget is None:
            raise ExportError(f"widget model {model_id} referenced by the view is not open (closed?)")
        state = widget.get_state()
        module = state.get("_model_module", "")
        if module == _ANYWIDGET:
            state.pop("layout", None)
            state.pop("style", None)
        state, paths, buffers = _remove_buffers(state)
        raw += sum(memoryview(b).nbytes for b in buffers)
        models[model_id] = {
            "raw": sum(memoryview(b).nbytes for b in buffers),
            "model_name": state.get("_model_name"),
            "model_module": module,
            "model_module_version": state.get("_model_module_version"),
            "state": state,
            "buffers": [{"path": p, "data": _b64(b)} for p, b in zip(paths, buffers)],
        }
        if module == _ANYWIDGET:
            models[model_id]["kernel_traits"] = kernel_traits(widget)
            models[model_id]["static_traits"] = sorted(n for n in getattr(widget, "_static_traits", STATIC_TRAITS)
                                                      if n in widget.keys)
        else:
            models[model_id]["kernel_traits"] = observed_traits(widget)
        todo.extend(_refs(state))
    return models, raw


def _reachable(root) -> dict:
    import ipywidgets

    found: dict[str, Any] = {}
    todo = [root]
    while todo:
        widget = todo.pop()
        if not isinstance(widget, ipywidgets.Widget) or widget.model_id in found:
            continue
        found[widget.model_id] = widget
        values = widget._trait_values
        for name in widget.keys:
            todo.extend(_widgets(values.get(name)))
    return found


def _widgets(value):
    import ipywidgets

    if isinstance(value, ipywidgets.Widget):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _widgets(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _widgets(v)


_LIBRARY_MODULES = ("ipywidgets", "traitlets", "bqplot", "bqscales", "anywidget", "comm")


def _handler_module(handler) -> str:
    func = getattr(handler, "func", handler)  # a class-level @observe handler
    owner = getattr(func, "__self__", None)
    if owner is not None and type(owner).__name__ in ("link", "directional_link"):
        return "link"  # traitlets.link/dlink: ties the value to another widget, so Python reacts
    func = getattr(func, "__func__", func)
    return getattr(func, "__module__", None) or type(func).__module__ or ""


def observed_traits(widget) -> list[str]:
    """The synced traits of a child widget (a bqplot mark, an ipywidgets control) that Python code other than the
    widget libraries' own reacts to (an observer, a traitlets link): a change of one made in a static page needs
    the kernel. A selection's ``index`` goes with its ``value``/``label`` (ipywidgets turns one into the other)."""
    names = set()
    for name, kinds in getattr(widget, "_trait_notifiers", {}).items():
        handlers = [h for hs in kinds.values() for h in hs]
        if any(not _handler_module(h).startswith(_LIBRARY_MODULES) for h in handlers):
            names.add(name)
    if names & {"value", "label"}:  # a selection syncs only its index; ipywidgets sets value and label from it
        names.add("index")
    return sorted(n for n in names if n in widget.keys and not n.startswith("_"))


def kernel_traits(widget) -> list[str]:
    """The synced traits the page may set whose change needs the kernel (not in the widget's ``_static_traits``)."""
    static = getattr(widget, "_static_traits", STATIC_TRAITS)
    names = []
    for name in widget.keys:
        if name.startswith("_") or name in static or name in ("layout", "tabbable", "tooltip"):
            continue
        if widget.trait_metadata(name, "owner") == "python":
            continue
        names.append(name)
    return sorted(names)


# -- the installed JavaScript --------------------------------------------------------------------------------------

def _nbextension_dirs() -> list[Path]:
    dirs = [Path(sys.prefix) / "share" / "jupyter" / "nbextensions"]
    try:
        from jupyter_core.paths import jupyter_path

        dirs += [Path(p) for p in jupyter_path("nbextensions")]
    except Exception:  # jupyter_core missing: the prefix is where pip puts them
        pass
    seen, out = set(), []
    for d in dirs:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def find_library(relative: str) -> Path | None:
    for d in _nbextension_dirs():
        path = d / relative
        if path.is_file():
            return path
    return None


def _script_text(text: str) -> str:
    """JavaScript safe to put inside a <script> element."""
    return re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)


# -- HTML ----------------------------------------------------------------------------------------------------------

def _jsonable(value):
    return json.loads(json.dumps(value, default=_json_default))


def capture_variants(widget, variants: list[dict], timeout: float | None = 600) -> tuple[dict | None, dict, int]:
    """The widget's state under each of ``variants`` (``{trait: value}``, set as a person would, computed, then
    put back): ``({"keys": [...], "entries": [{"values": {...}, "models": {id: spec}}]}, the models as they were,
    raw bytes of all)``.
    The first entry is the state as it was; each entry holds the full specs of the models that differ from it.
    The live widget shows each variant while it is captured."""
    if not variants:
        return None, *collect_models(widget)
    keys = sorted({k for v in variants for k in v})
    unknown = [k for k in keys if k not in widget.keys or widget.trait_metadata(k, "owner") == "python"]
    if unknown:
        raise ExportError(f"variants may set the traits a person sets ({', '.join(kernel_traits(widget))}); "
                          f"got {', '.join(unknown)}")
    widget.wait(timeout)
    base, base_raw = collect_models(widget)  # the file's state: taken before any variant (they may replace charts)
    original = {k: getattr(widget, k) for k in keys}
    captured = []
    try:
        for variant in variants:
            with widget.hold_trait_notifications():
                for k, v in variant.items():
                    setattr(widget, k, v)
            if not widget.wait(timeout):
                raise ExportError(f"the variant {variant} did not finish computing within {timeout} s")
            if widget.error:
                raise ExportError(f"the variant {variant} failed: {widget.error}")
            models, _ = collect_models(widget)
            changed = {i: m for i, m in models.items()
                       if i not in base or {**m, "raw": 0} != {**base[i], "raw": 0}}
            captured.append(({k: _jsonable(getattr(widget, k)) for k in keys}, changed))
    finally:
        with widget.hold_trait_notifications():
            for k, v in original.items():
                setattr(widget, k, v)
        widget.wait(timeout)
    touched = {i for _, changed in captured for i in changed if i in base}
    entries = [{"values": {k: _jsonable(v) for k, v in original.items()}, "models": {i: base[i] for i in touched}}]
    entries += [{"values": values, "models": changed} for values, changed in captured]
    raw = base_raw + sum(m["raw"] for e in entries for m in e["models"].values())
    return {"keys": keys, "entries": entries}, base, raw


def export_html(widget, path, *, title: str | None = None, variants: list[dict] | None = None,
                timeout: float | None = 600) -> dict:
    """Write ``widget``'s view as one self-contained HTML file; return figures about it (sizes, time, what is in
    it). ``variants``: other settings to hold too (``[{"layer": "block2_conv"}, {"page": 1}]``), each computed
    now; in the file, choosing one of them shows it instead of asking for the kernel. See the module docstring."""
    start = time.perf_counter()
    if widget.comm is None:
        raise ExportError(f"this {type(widget).__name__} is closed; there is nothing to export.")
    if variants is None:
        variants = widget._export_variants()
    captured, models, raw_buffers = capture_variants(widget, list(variants), timeout)
    modules = sorted({m["model_module"] for m in models.values()} - {_ANYWIDGET})
    libraries: dict[str, Path] = {}
    missing: list[str] = []
    for module in modules:
        entry = _LIBRARIES.get(module)
        found = find_library(entry[1]) if entry else None
        if found is None:
            kinds = sorted({m["model_name"] for m in models.values() if m["model_module"] == module})
            missing.append(f"{module} ({', '.join(kinds)})")
        else:
            libraries[entry[0]] = found
    notices = []
    if getattr(widget, "running", False):
        notices.append(f"Exported while the widget was still computing ({widget.status or 'running'}): the file "
                       "holds what was computed so far. Call widget.wait() before export_html for the full result.")
        warnings.warn(f"export_html: {notices[-1]}", stacklevel=3)
    if missing:
        notices.append("Not drawn in this file (their JavaScript is not installed with Python): "
                       + "; ".join(missing) + ".")
        warnings.warn(f"export_html: {notices[-1]}", stacklevel=3)

    data = {
        "format": EXPORT_FORMAT,
        "root": widget.model_id,
        "models": models,
        "libraries": sorted(libraries),
        "missing_modules": [m.split(" ")[0] for m in missing],
        "notices": notices,
        "widget": type(widget).__name__,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
        "variants": captured,
    }
    data_json = json.dumps(data, separators=(",", ":"), allow_nan=False, default=_json_default)
    entries = [*models.values(), *(m for e in (captured or {}).get("entries", ()) for m in e["models"].values())]
    data_json = data_json.replace("</", "<\\/")  # inside a <script> element
    esm_bytes = sum(len(m["state"].get("_esm", "").encode()) for m in models.values())
    library_texts = {name: libraries[name].read_text(encoding="utf-8") for name in sorted(libraries)}
    amd = (js_dir() / "export_amd.js").read_text(encoding="utf-8")
    shim = (js_dir() / "export_shim.js").read_text(encoding="utf-8")

    name = title or f"{type(widget).__name__} (cnnwidget export)"
    parts = [
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        "<meta name=\"generator\" content=\"cnnwidget export_html\">",
        f"<title>{_escape(name)}</title>",
        "<style>body{margin:12px;font-family:system-ui,sans-serif;}"
        "#cnnw-export-note{font-size:12px;color:#616161;margin:0 0 8px 0;}"
        "#cnnw-export-notices p{padding:4px 8px;border-left:3px solid #f57c00;background:#eeeeee;}"
        # no kernel by design: no "disconnected" mark; bqplot's toolbar icons need a font the page does not have
        ".jupyter-widgets-disconnected::before{content:none!important;display:none!important;}"
        ".bqplot .toolbar_div{display:none!important;}</style>",
        "</head><body>",
        f"<p id=\"cnnw-export-note\">{_escape(type(widget).__name__)} exported by cnnwidget on {data['created']}: "
        "a static copy. Colour map, normalization, opacity and hover work here; changes that need the model "
        "(another layer, image, page or method) need the notebook's kernel.</p>",
        "<div id=\"cnnw-export-notices\">" + "".join(f"<p role=\"status\">{_escape(n)}</p>" for n in notices)
        + "</div>",
        "<div id=\"cnnw-export-root\"></div>",
        f"<script type=\"application/json\" id=\"cnnw-export-data\">{data_json}</script>",
        f"<script>{_script_text(amd)}</script>",
    ]
    for amd_name, text in library_texts.items():
        parts.append(f"<script>window.cnnwAmd.next({json.dumps(amd_name)});</script>")
        parts.append(f"<script>{_script_text(text)}</script>")
    parts.append(f"<script type=\"module\">{_script_text(shim)}</script>")
    parts.append("</body></html>\n")
    html = "\n".join(parts)
    out = Path(path)
    out.write_bytes(html.encode("utf-8"))
    encoded_buffers = sum(len(b["data"]) for m in entries for b in m["buffers"])
    code = sum(len(t.encode()) for t in library_texts.values()) + len(amd.encode()) + len(shim.encode())
    state_bytes = len(data_json.encode()) - encoded_buffers
    held = raw_buffers + state_bytes + code  # what the file holds, in raw bytes (the arrays unencoded)
    size = out.stat().st_size
    return {
        "path": str(out),
        "bytes": size,
        "raw_bytes": held,
        "ratio": size / held if held else float("nan"),
        "array_bytes": raw_buffers,
        "array_encoded_bytes": encoded_buffers,
        "array_ratio": encoded_buffers / raw_buffers if raw_buffers else float("nan"),
        "state_bytes": state_bytes,
        "esm_bytes": esm_bytes,
        "library_bytes": code,
        "models": len(models),
        "variants": len(captured["entries"]) - 1 if captured else 0,
        "libraries": sorted(libraries),
        "missing": missing,
        "seconds": time.perf_counter() - start,
    }


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _escape(text: str) -> str:
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;"))


# -- arrays ----------------------------------------------------------------------------------------------------------

_NOT_HELD = frozenset({"view", "job", "keys", "comm", "widgets", "widget_types"})


def default_holds(widget) -> dict[str, np.ndarray]:
    """What ``widget`` holds, found the same way for every widget:

    - every synced binary trait, under its name: uint8, the exact bytes the view draws (quantized maps, tiles,
      images), and the ``*ranges`` traits as float32 (k, 2) [lo, hi] (docs/wire-format.md);
    - every public property or attribute whose value is a numpy array, or a dict of them (``name.key``), in full
      precision: e.g. ``images``, ``losses``, ``maps``, ``rollout``, ``cka``, ``history``.
    """
    import traitlets as t

    out: dict[str, np.ndarray] = {}
    for name in sorted(widget.keys):
        if isinstance(widget.traits().get(name), t.Bytes):
            value = bytes(getattr(widget, name))
            if not value:
                continue
            if name.endswith("ranges") and len(value) % 8 == 0:  # docs/wire-format.md: float32 (k, 2) [lo, hi]
                out[name] = np.frombuffer(value, dtype="<f4").reshape(-1, 2).copy()
            else:
                out[name] = np.frombuffer(value, dtype=np.uint8).copy()
    cls = type(widget)
    names = {n for klass in cls.__mro__ if klass.__module__.startswith("cnnwidget")  # not ipywidgets' own
             for n, v in vars(klass).items() if isinstance(v, property)}
    names |= {n for n in widget.__dict__}
    for name in sorted(names):
        if name.startswith("_") or name in _NOT_HELD or widget.has_trait(name):
            continue
        try:
            value = getattr(widget, name)
        except Exception:  # a property that cannot answer now (nothing computed yet)
            continue
        for key, array in _arrays_in(name, value):
            out[key if key not in out else f"value.{key}"] = array
    return out


def _arrays_in(name: str, value):
    if isinstance(value, np.ndarray):
        if value.dtype.kind != "O":
            yield name, value
    elif isinstance(value, dict) and value:
        for key, item in value.items():
            if isinstance(item, np.ndarray) and item.dtype.kind != "O":
                yield f"{name}.{key}", item


def settings(widget) -> dict[str, Any]:
    """The settings that made what ``widget`` holds: every synced trait that is plain data (not bytes, not a child
    widget, not ipywidgets' own), plus the widget's class, model name and input range."""
    import ipywidgets
    import traitlets as t

    out: dict[str, Any] = {"widget": type(widget).__name__}
    probe = widget.__dict__.get("probe")
    if probe is not None:
        out["model"] = getattr(probe.model, "name", None)
        out["input_range"] = list(getattr(probe, "input_range", ()) or ())
    skip = {"layout", "tabbable", "tooltip", "_dom_classes", "_view_count", "_esm", "_css"}
    for name in sorted(widget.keys):
        if name in skip or name.startswith("_"):
            continue
        trait = widget.traits().get(name)
        if isinstance(trait, t.Bytes):
            continue
        value = getattr(widget, name)
        if isinstance(value, ipywidgets.Widget) or any(isinstance(v, ipywidgets.Widget)
                                                       for v in (value if isinstance(value, (list, tuple)) else ())):
            continue
        try:
            json.dumps(value, default=_json_default, allow_nan=True)
        except TypeError:
            value = repr(value)
        out[name] = value
    return out


def to_numpy(widget) -> dict[str, Any]:
    """``{"arrays": {name: ndarray}, "settings": {...}}``: what the widget holds and what made it."""
    arrays = widget._holds()
    bad = [k for k, v in arrays.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise TypeError(f"{type(widget).__name__}._holds() must return numpy arrays; {bad} are not")
    return {"arrays": dict(arrays), "settings": settings(widget)}


def save_npz(widget, path) -> Path:
    """``to_numpy()`` as one .npz: the arrays under their names, the settings as JSON text under ``settings.json``;
    ``load_npz`` reads it back."""
    held = to_numpy(widget)
    arrays = held["arrays"]
    if "settings.json" in arrays:
        raise ValueError("an array may not be named 'settings.json'")
    text = json.dumps(held["settings"], default=_json_default, allow_nan=True)
    out = Path(path)
    with out.open("wb") as f:
        np.savez_compressed(f, **arrays, **{"settings.json": np.array(text)})
    return out


def load_npz(path) -> dict[str, Any]:
    """A file written by ``save_npz`` as ``{"arrays": {...}, "settings": {...}}`` (no pickle)."""
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files if k != "settings.json"}
        text = str(f["settings.json"]) if "settings.json" in f.files else "{}"
    return {"arrays": arrays, "settings": json.loads(text)}


# -- PNG -------------------------------------------------------------------------------------------------------------

def wrap_esm(source: str) -> str:
    """``source`` (one bundled ES module with ``export default <view>``) with js/export_tools.js around its view:
    every view then answers a save-PNG request and gets a PNG button. A module of another form is kept as is."""
    match = re.search(r"^export default\s+", source, re.MULTILINE)
    if not match or "__cnnwExportTools" in source:
        return source
    tools = (js_dir() / "export_tools.js").read_text(encoding="utf-8")
    tools = re.sub(r"^export\s+(?=function|const)", "", tools, flags=re.MULTILINE)
    return (source[:match.start()] + "const __cnnwView = " + source[match.end():]
            + "\n// ---- export_tools.js ----\n" + tools
            + "\nexport default __cnnwExportTools(__cnnwView);\n")


class PngFuture(Future):
    """The Future ``save_png`` returns; a ``result(timeout)`` that runs out says why it may have (new-user trial:
    ``f.result(timeout=20)`` in the cell after save_png always raised a bare TimeoutError)."""

    def result(self, timeout=None):
        try:
            return super().result(timeout)
        except TimeoutError:
            raise TimeoutError(
                f"the PNG was not written within {timeout} s. In a notebook the page's answer reaches the kernel only "
                "when no cell is running: check `future.done()` or call `future.result()` in a later cell.") from None


class PngRequests:
    """The kernel side of ``save_png``: one request at a time per widget, answered by the view."""

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: dict[int, tuple[Path, Future]] = {}
        self.counter = 0

    def request(self, widget, path) -> Future:
        if widget.comm is None:
            raise ExportError(f"this {type(widget).__name__} is closed; there is no view to take a PNG of.")
        if not widget._view_count and widget._view_count is not None:
            raise ExportError(
                f"save_png needs the widget shown in a page (it takes the pixels the browser drew); this "
                f"{type(widget).__name__} has no displayed view. Show it (display(widget)) and call save_png again, "
                "or use save_npz / export_html, which need no view.")
        if "__cnnwExportTools" not in str(getattr(widget, "_esm", "")):
            raise ExportError(f"{type(widget).__name__}'s view cannot take a PNG: its ES module is not one bundled "
                              "string with `export default`, so the base could not add the PNG tools to it.")
        future = PngFuture()
        with self.lock:
            self.counter += 1
            ident = self.counter
            self.pending[ident] = (Path(path), future)
        widget.send({"action": PNG_ACTION, "id": ident})
        timer = threading.Timer(PNG_TIMEOUT, self._expire, args=(ident,))
        timer.daemon = True
        timer.start()
        return future

    def _expire(self, ident: int):
        with self.lock:
            entry = self.pending.pop(ident, None)
        if entry is not None and not entry[1].done():
            entry[1].set_exception(ExportError(
                f"no view answered the PNG request within {PNG_TIMEOUT:.0f} s (is the page that shows the widget "
                "still open?)"))

    def answer(self, widget, content: dict, buffers) -> bool:
        if not isinstance(content, dict) or content.get("action") != PNG_ACTION:
            return False
        with self.lock:
            entry = self.pending.pop(content.get("id"), None)
        if entry is None:
            return True
        path, future = entry
        if content.get("error") or not buffers:
            future.set_exception(ExportError(f"the view could not make a PNG: {content.get('error') or 'no data'}"))
            return True
        data = bytes(buffers[0])
        if not data.startswith(b"\x89PNG\r\n\x1a\n"):
            future.set_exception(ExportError("the view sent something that is not a PNG"))
            return True
        path.write_bytes(data)
        future.set_result({"path": str(path), "width": content.get("width"), "height": content.get("height"),
                           "canvases": content.get("canvases"), "bytes": len(data)})
        return True
