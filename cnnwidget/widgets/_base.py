"""The one base every cnnwidget widget is built on: :class:`CnnWidget`.

The public widget IS the anywidget model. Its state is real traitlets on the public class, synced with the
browser, so ``traitlets.link``, ``dlink``, ``widgets.link``, ``widgets.jslink`` (with no kernel), ``observe(names=)``
and ``has_trait`` work as on any ipywidget, and there is one copy of each value. Charts (bqplot figures) are
child widgets held in synced ``Instance`` traits and mounted by the view (``js/dom.js`` ``mountWidget``); the base
closes them with everything inside them.

Why the public widget is the anywidget model (and not a Box around a view, as before): ``widgets.jslink`` links
two models in the browser, so the traits it links must live on the model the person holds, and a view must draw
from them with no kernel; real traits on the widget also make ``link``/``observe``/``has_trait`` plain ipywidgets
behaviour, and a refused value has one copy to put back. Prototyped first in JupyterLab 4.6: a bqplot figure held
in a synced ``Instance`` trait, created with ``model.widget_manager.create_view`` and sent Lumino attach messages
(``js/dom.js`` ``mountWidget``), draws as in a Box, and a jslinked IntSlider drives the widget with the kernel
SIGSTOPped (tests/browser/test_jslink_browser.py).

How a widget uses it (see activation_grid.py for a worked example)::

    class MyView(CnnWidget):
        _esm = bundle("my_view.js")
        layer = t.Unicode("").tag(sync=True)                 # a person sets it (Python or the page)
        tiles = t.Bytes(b"").tag(sync=True, owner="python")  # only Python sets it: the page cannot
        chart = t.Instance(bqplot.Figure, allow_none=True).tag(sync=True, **ipywidgets.widget_serialization)

        def __init__(self, model, layer=None):
            self.probe = as_probe(model)       # plain attributes the checks need: set them first
            super().__init__(layer=..., chart=_make_chart())   # initial state, quietly (no reactions)
            self._start(self._first_page)      # the first computation runs on the worker: the widget shows at once

        @checks("layer")                       # validation, for Python and the page alike; may coerce
        def _check_layer(self, value):
            return self.probe.layer(value).path     # a CnnWidgetError refuses the value

        @reacts("layer")                       # a person changed it (not the widget itself)
        def _on_layer(self, change):
            self._start(self._page_job, settle=True, revert={"layer": change["old"]})
                                               # or compute here and self._push(...) for instant work

        def _page_job(self, job):              # on the worker thread
            state = compute(...)
            if job.cancelled: return
            self._report(job, tiles=state)     # dropped if a newer job was asked for meanwhile
                                               # (or: with self._locked(): if self._is_current(job): ...)
            return {"status": "done"}          # pushed with running=False at the end (if still current)

What the base owns:

- ``error``, ``status``, ``running``, ``progress``: synced, set by Python only. ``error`` is the last refusal or
  failure (the view shows it with ``role=alert``); a valid change clears it.
- ``warning``: synced, set by Python only: a caveat about the input that stays while the input does, e.g. float
  images far outside ``input_range`` (``core.images.range_note``). A widget that takes images checks them with
  ``self._images(images)`` (the probe's check, and the note), and its view shows the trait (js/dom.js
  ``warningBox``).
- Validation (``@checks``) runs on every value, from Python and from the page. From Python a bad value raises
  (a CnnWidgetError that is also a ``traitlets.TraitError``) and is shown in ``error``; the value is not taken.
  From the page (``set_state``), a value of the wrong type, one refused by a check, or a change of a trait tagged
  ``owner="python"`` refuses the whole message: ``error`` says why and the page is put back on the kernel's
  values; nothing is logged and nothing is half-applied.
- Reactions (``@reacts``): observers of changes a person made, run under the widget's lock, one at a time. A
  CnnWidgetError in one puts the changed trait back, shows the message, and is raised when the change came
  from Python (a change from the page has no caller to raise to). The widget's own sets (``_push``, ``_quietly``)
  do not trigger them.
- One job runner (``_start``; ``job``, ``cancel()``, ``wait()``): one job computing per widget, the newest request
  supersedes a waiting one (see _jobs.py), reports of a stale job dropped (``_report``), the progress throttle
  (``_report(job, throttle=True, ...)``: at most every ``PROGRESS_SECONDS``). ``running`` is True from ``_start``
  until the newest job ends; its failure shows in ``error`` (with a traceback in the log if it is not a
  CnnWidgetError). Quick work is started with ``settle=True``: the change that started it (from Python or the
  page) returns once it ends, so ``grid.layer = "x"`` returns with the new page (and raises its CnnWidgetError)
  and the page's update is answered in order; long work (a render) never makes a change wait. ``wait()``
  blocks until the widget is idle (a constructor returns at once: its first computation is on the worker).
- Links between widgets (``_follow``): the follower reads the leader's *current* state under both widgets'
  locks, so it always ends on the leader's final state, whatever threads change the leader.
- ``close()``: stops the job (nothing it still reports is shown), removes links, and closes every widget the
  widget made: the ones in its synced traits (charts, with their marks, scales, axes and layouts), the ones
  given to ``_own``, and its own layout. Safe on a widget whose constructor raised halfway.
- A one-line ``repr`` (class, model, what ``_describe()`` adds).
- ``view``: the widget itself (code written when the view was a separate model keeps working: ``grid.view.tiles``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import threading
from typing import Any, Callable

import anywidget
import ipywidgets
import traitlets as t
from ipywidgets.widgets.widget import _remove_buffers

from ..core import CnnWidgetError, OptionError
from ..core.images import range_note
from . import _export
from ._jobs import Job, Worker

PROGRESS_SECONDS = 0.1  # progress reaches the browser at most this often: each report is a comm message

_log = logging.getLogger("cnnwidget.widgets")
_thread = threading.local()  # .browser: depth of set_state calls (a browser message) on this thread


class BadValue(OptionError, t.TraitError):
    """A value a widget's trait cannot take (wrong type, out of range, unknown option): an OptionError that is also
    a traitlets TraitError, so traitlets rolls back a message that held it and link() callers see a TraitError."""


_trait_error_types: dict[type, type] = {}


def as_trait_error(exc: CnnWidgetError) -> t.TraitError:
    """``exc`` as an instance of a subclass of both its own class and TraitError (same message): traitlets rolls a
    message back only on TraitError, and callers keep catching LayerError, OptionError, ..."""
    if isinstance(exc, t.TraitError):
        return exc
    cls = type(exc)
    both = _trait_error_types.get(cls)
    if both is None:
        both = _trait_error_types[cls] = type(cls.__name__, (cls, t.TraitError), {"__module__": cls.__module__})
    new = both(*exc.args)
    new.__dict__.update(exc.__dict__)
    return new


def checks(*names: str):
    """Decorator: ``method(self, value) -> value`` (or ``method(self, value, name)``) validates, and may coerce, a
    new value of each trait in ``names``, from Python and from the page. Raise a CnnWidgetError to refuse it (its
    message is shown). Runs after the trait's own type check; when several traits are set together (a message
    from the page, ``hold_trait_notifications``), with all their new values, and a refusal rolls them all back."""

    def decorate(fn):
        takes_name = len(inspect.signature(fn).parameters) >= 3

        @t.validate(*names)
        @functools.wraps(fn)
        def validator(self, proposal):
            try:
                if takes_name:
                    return fn(self, proposal["value"], proposal["trait"].name)
                return fn(self, proposal["value"])
            except CnnWidgetError as exc:
                raise as_trait_error(exc) from None

        return validator

    return decorate


def reacts(*names: str):
    """Decorator: ``method(self, change)`` runs when a person (Python or the page) changes one of ``names``; not for
    the widget's own sets. See the module docstring for locking, errors and waiting."""

    def decorate(fn):
        @t.observe(*names)
        @functools.wraps(fn)
        def observer(self, change):
            if self._is_quiet():
                return
            self._react(fn, change)

        return observer

    return decorate


def from_browser() -> bool:
    """Whether this thread is applying a message from the page (a raise would only reach the kernel log)."""
    return getattr(_thread, "browser", 0) > 0


@functools.lru_cache(maxsize=None)
def _own_traits(cls) -> frozenset:
    """The traits a cnnwidget class declares itself (not those of ipywidgets' DOMWidget, such as ``layout``)."""
    return frozenset(name for klass in cls.__mro__ if issubclass(klass, CnnWidget)
                     for name, value in vars(klass).items() if isinstance(value, t.TraitType))


class CnnWidget(anywidget.AnyWidget):
    """The base of every cnnwidget widget; see the module docstring."""

    error = t.Unicode("", help="the last refused value or failure, shown in the widget").tag(sync=True,
                                                                                          owner="python")
    status = t.Unicode("", help="what the widget is doing or did last").tag(sync=True, owner="python")
    running = t.Bool(False, help="a job is computing on the widget's worker").tag(sync=True, owner="python")
    progress = t.Dict(help="the last job's progress (keys depend on the widget)").tag(
        sync=True, owner="python")
    warning = t.Unicode("", help="a caveat about the input, shown in the widget while it holds").tag(
        sync=True, owner="python")
    # The traits the page may set whose change needs the kernel (_export.kernel_traits, the rule export_html uses):
    # with the kernel shut down, the page puts a change of one back and says why (js/export_tools.js
    # cnnwKernelGuard), as the exported HTML does, instead of showing, say, a layer whose maps cannot be computed.
    _kernel_traits = t.List(t.Unicode()).tag(sync=True, owner="python")

    _worker_name = "cnnwidget-worker"

    def __new__(cls, *args, **kwargs):
        self = super().__new__(cls, *args, **kwargs)
        # Made before any constructor code, so close(), __del__ and repr work on a half-built widget.
        state = self.__dict__
        state["_lock"] = threading.RLock()  # browser changes may arrive on a kernel subshell thread; jobs report
        state["_held"] = {}  # thread ident -> depth of _lock held by that thread
        state["_quiet"] = {}  # thread ident -> depth of _quietly() on that thread
        state["_reaction_jobs"] = threading.local()
        state["_jobs"] = Worker(cls._worker_name)
        state["_owned"] = []
        state["_links"] = []
        state["_closed"] = False
        return self

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        esm = cls.__dict__.get("_esm")
        if isinstance(esm, str):  # every view answers save_png and gets a PNG button (js/export_tools.js)
            cls._esm = _export.wrap_esm(esm)

    def __init__(self, **state):
        """Open the widget with its initial ``state`` (trait values), checked but without reactions: everything
        the view needs on first draw goes in its comm_open."""
        state.setdefault("warning", self.__dict__.get("_input_warning", ""))
        state.setdefault("_view_count", 0)  # the page counts its views: save_png knows whether one is shown
        state.setdefault("_kernel_traits", _export.kernel_traits(self))
        with self._quietly():
            super().__init__(**state)
        self.on_msg(self._on_export_msg)
        self.on_msg(self._on_action)
        self.__dict__["_built"] = True

    def _images(self, images):
        """``self.probe.images(images)`` (checked against the model, float32 (N, H, W, C)), and ``warning`` set to
        what is untrustworthy about them (``range_note``: float values far outside ``input_range``) or cleared.
        Before ``__init__`` the note waits for it."""
        batch = self.probe.images(images)
        note = range_note(batch, self.probe.input_range) or ""
        self.__dict__["_input_warning"] = note
        if self.__dict__.get("_built"):
            self._push(warning=note)
        return batch

    # -- public ------------------------------------------------------------------------------------------------

    @property
    def view(self) -> "CnnWidget":
        """The widget itself: it is its own view's model (kept for code that read ``widget.view.<trait>``)."""
        return self

    @property
    def job(self) -> Job | None:
        """The newest job (``.wait()``, ``.running``, ``.cancel()``), or None before any."""
        return self._jobs.job

    def cancel(self):
        """Stop the running job at its next step (what it made so far stays) and drop a waiting one."""
        self._jobs.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the widget's jobs are done (for scripts and tests; a notebook never needs to). True if so."""
        return self._jobs.wait(timeout)

    def close(self):
        """Stop the job, unlink, and close every widget this one made (charts, marks, scales, axes, layouts)."""
        state = self.__dict__
        if state.get("_closed", True):  # closed already, or __new__ never ran
            return
        state["_closed"] = True
        try:
            state["_jobs"].stop()
            for unlink in list(state["_links"]):
                unlink()
            seen = {id(self)}
            for widget in [*state["_owned"], *_widgets_in(self)]:
                _close_tree(widget, seen)
            state["_owned"].clear()
        finally:
            self._stop_view_count()
            super().close()

    def _stop_view_count(self):
        """Before the comm closes, tell the page to stop counting this widget's views (``_view_count`` None).
        ipywidgets' WidgetView sends ``_view_count - 1`` (save_changes) from every view removed while the count is a
        number, and a model closed from Python removes its views after dropping its comm: each view then threw an
        uncaught "Syncing error: no comm channel defined" in the page (one per view of the widget and of each panel
        it owns). The update goes out before comm_close and JupyterLab handles a comm's messages in order, so the
        views are removed with no count to send."""
        if self.comm is None or self._view_count is None:
            return
        try:
            self._view_count = None
        except Exception:  # the kernel's comm already gone: no page to tell
            pass

    def __repr__(self) -> str:
        try:
            probe = self.__dict__.get("probe")
            parts = [f"model {probe.model.name!r}"] if probe is not None else []
            parts += self._describe()
        except Exception:  # a half-built widget still has a repr
            parts = []
        closed = " (closed)" if self.__dict__.get("_closed") and self.comm is None else ""
        return f"<{type(self).__name__}{' ' if parts else ''}{', '.join(parts)}{closed}>"

    def _describe(self) -> list[str]:
        """Hook: the few words after the model name in the repr (layer, method, image count)."""
        return []

    # -- keep and share (the work is in _export.py) ------------------------------------------------------------

    def export_html(self, path, *, title: str | None = None, variants: list | None = None) -> dict:
        """Write the view as one self-contained HTML file (no kernel, no network): the current state, the arrays
        and the JavaScript. Colour map, normalization, opacity and hover values work in it. ``variants``: other
        settings to hold as well, e.g. ``[{"page": 1}, {"layer": "block2_conv"}]`` (computed now, shown in the
        live view meanwhile, then put back); in the file, choosing one shows it; any other change that needs the
        model is refused there and says so. Default: ``_export_variants()``. Returns figures (``bytes``,
        ``raw_bytes``, ``ratio``, ``seconds``, ...)."""
        return _export.export_html(self, path, title=title, variants=variants)

    def _export_variants(self) -> list:
        """Hook: the settings ``export_html`` holds besides the current one when not told (say, the pages a widget
        has computed already). None by default."""
        return []

    def save_png(self, path):
        """Ask the displayed view for what it shows as one PNG (canvases at their own resolution, colour bars, text,
        charts; cropped to the view's content), written to ``path`` when the page answers. Returns a
        ``concurrent.futures.Future`` (its result: path, width, height). Needs a view shown in a page; in a notebook
        the page answers once the running cell has finished."""
        return self.__dict__.setdefault("_png_requests", _export.PngRequests()).request(self, path)

    def _holds(self) -> dict:
        """What the widget holds, as ``{name: numpy array}`` (``to_numpy``/``save_npz``). By default every synced
        binary trait (the exact bytes the view draws) and every public array, or dict of arrays, the widget
        exposes (``images``, ``maps``, ``losses``, ...) in full precision; a widget may override it."""
        return _export.default_holds(self)

    def to_numpy(self) -> dict:
        """``{"arrays": {name: ndarray}, "settings": {...}}``: every computed array the widget holds and the
        settings that made it (seed, method, options, layer, model name)."""
        return _export.to_numpy(self)

    def save_npz(self, path):
        """``to_numpy()`` as one .npz file (settings as JSON under ``settings.json``); read back with
        ``cnnwidget.load_npz``."""
        return _export.save_npz(self, path)

    _actions: dict = {}
    """The view's buttons: {action the view sends: name of the method it calls}, e.g. {"compute": "compute",
    "cancel": "cancel"}. One handler for every widget (``_on_action``)."""

    def _on_action(self, _widget, content, _buffers):
        name = self._actions.get(content.get("action")) if isinstance(content, dict) else None
        if name is None:
            return
        try:
            getattr(self, name)()
        except CnnWidgetError:
            pass  # already shown in the view's error box; a click has no caller to raise to

    def _on_export_msg(self, _widget, content, buffers):
        requests = self.__dict__.get("_png_requests")
        if requests is not None:
            requests.answer(self, content, buffers)

    # -- validation --------------------------------------------------------------------------------------------

    def __setattr__(self, name, value):
        if name.startswith("_") or not self.has_trait(name):
            super().__setattr__(name, value)
            return
        state = self.__dict__
        if state.get("_closed") and not state["_quiet"].get(threading.get_ident()) and name in _own_traits(type(self)):
            # A closed widget has no view and no worker: taking the value would change nothing anyone sees.
            raise CnnWidgetError(f"this {type(self).__name__} is closed, so {name} can no longer be set; make a new "
                                 f"widget to go on.")
        try:
            super().__setattr__(name, value)
        except t.TraitError as exc:
            refused = exc if isinstance(exc, CnnWidgetError) else BadValue(self._value_message(name, value, exc))
            self._show_refusal(str(refused))
            if refused is exc:
                raise
            raise refused from None

    def set_state(self, sync_data):
        """A message from the page: values checked as from Python; refused ones are not taken and the page is put
        back on the kernel's values (see the module docstring)."""
        _thread.browser = getattr(_thread, "browser", 0) + 1
        try:
            with self._collecting_jobs() as started:
                with self._locked():
                    self._set_from_browser(sync_data)
            self._settle(started)  # quick work is done before the kernel answers the page (one reply, in order)
        finally:
            _thread.browser -= 1

    def _set_from_browser(self, sync_data: dict):
        refused: dict[str, str] = {}
        for name, raw in sync_data.items():
            if name not in self.keys:
                continue
            if self.trait_metadata(name, "owner") == "python":
                refused[name] = f"{name} is set by the widget, not from the page; it stays {self._json(name)}."
                continue
            try:
                from_json = self.trait_metadata(name, "from_json", self._trait_from_json)
                self.traits()[name].validate(self, from_json(raw, self))  # the type and its bounds
            except Exception as exc:
                refused[name] = self._value_message(name, raw, exc)
        known = [k for k in sync_data if k in self.keys]
        if refused:  # one bad value refuses the whole message: nothing is half-applied
            self._echo({k: sync_data[k] for k in known})
        else:
            try:
                super().set_state(sync_data)
            except t.TraitError as exc:  # a check refused a value: traitlets rolled the whole message back
                refused[""] = str(exc)
        if refused:
            self._show_refusal(next(iter(refused.values())))
            if known:
                self.send_state(known)  # the page shows the kernel's values again

    def _echo(self, state: dict):
        """Answer the page's update of ``state`` as ipywidgets does for taken values (``echo_update``): the page
        waits for that echo before it takes the kernel's value of those traits again."""
        state, paths, buffers = _remove_buffers(state)
        self._send({"method": "echo_update", "state": state, "buffer_paths": paths}, buffers=buffers)

    def _json(self, name: str) -> str:
        value = getattr(self, name)
        return f"{len(value)} bytes" if isinstance(value, (bytes, bytearray, memoryview)) else repr(value)

    def _value_message(self, name: str, value: Any, exc: BaseException) -> str:
        if isinstance(exc, CnnWidgetError):
            return str(exc)
        trait = self.traits().get(name)
        expected = trait.info() if trait is not None else "another value"
        low, high = getattr(trait, "min", None), getattr(trait, "max", None)
        if low is not None and high is not None:
            expected += f" between {low} and {high}"
        elif low is not None or high is not None:
            expected += f" {'>=' if low is not None else '<='} {low if low is not None else high}"
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        return f"{name} must be {expected}; got {shown}."

    def _show_refusal(self, message: str):
        with self._quietly():
            self.set_trait("error", message)

    # -- reacting ----------------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self):
        """Hold the widget's lock (re-entrant), counting the holds of this thread."""
        with self._lock, _counted(self._held):
            yield

    def _quietly(self):
        """Set traits without the widget's reactions running: it made the state, or is putting one back."""
        return _counted(self._quiet)

    def _is_quiet(self) -> bool:
        return threading.get_ident() in self.__dict__.get("_quiet", ())

    def _push(self, **values):
        """Set traits as the widget's own state (no reactions), in one message."""
        with self._locked(), self.hold_sync(), self._quietly():
            for name, value in values.items():
                setattr(self, name, value)

    def _react(self, fn: Callable, change):
        with self._collecting_jobs() as started:
            with self._locked():
                try:
                    fn(self, change)
                except CnnWidgetError as exc:
                    self._refuse(change, exc)
                    if not from_browser():
                        raise
        self._settle(started)

    @contextlib.contextmanager
    def _collecting_jobs(self):
        """Collect the jobs started (with ``settle=True``) inside the block; nested blocks hand theirs outwards."""
        local = self._reaction_jobs
        outer = getattr(local, "jobs", None)
        local.jobs = started = []
        try:
            yield started
        finally:
            local.jobs = outer
            if outer is not None:
                outer.extend(started)
                started.clear()

    def _refuse(self, change, exc: CnnWidgetError):
        """Put ``change``'s trait back and show why."""
        with self._quietly():
            self.set_trait(change["name"], change["old"])
            self.set_trait("error", str(exc))

    def _held_by_me(self) -> bool:
        return threading.get_ident() in self._held

    def _settle(self, started: list):
        """Wait for the last quick job (``settle=True``) a change started, unless this thread cannot (it is the
        worker, or holds the lock the job reports under); raise its CnnWidgetError if the change came from Python
        (its traits were put back)."""
        if not started or self._jobs.on_worker_thread() or self._held_by_me():
            return
        job = started[-1]
        job.wait()
        if isinstance(job.error, CnnWidgetError) and self._jobs.is_current(job) and not from_browser():
            raise job.error

    # -- jobs --------------------------------------------------------------------------------------------------

    def _start(self, work: Callable[[Job], Any], *, revert: dict | None = None, progress: dict | None = None,
               status: str | None = None, settle: bool = False) -> Job:
        """Run ``work(job)`` on the widget's worker (cancelling the running job, superseding a waiting one).

        ``work`` checks ``job.cancelled`` at its steps and reports with ``self._report(job, ...)``; what it returns
        (a dict of traits, or None) is pushed with ``running=False`` when it ends, if it is still the newest job.
        If it raises, ``error`` shows why, ``status`` becomes "stopped" and the traits in ``revert`` are put back.
        ``settle``: quick work (a page of tiles): a change made from Python or the page that started it returns
        once it ends (so ``grid.layer = "x"`` returns with the new state, and the page's update is answered in
        order); long work (a render) never makes a change wait.
        """
        with self._locked():
            job_ref: list[Job] = []

            def run(j: Job):
                return None if j.cancelled else work(j)  # cancelled while it waited: it ends at once

            def done(result):
                self._job_done(job_ref[0], result)

            def failed(exc, trace):
                self._job_failed(job_ref[0], exc, trace, revert)

            with self.hold_sync(), self._quietly():
                self.running = True
                self.progress = dict(progress or {})
                if status is not None:
                    self.status = status
            job = self._jobs.submit(run, on_done=done, on_error=failed, pass_job=True)
            job_ref.append(job)
            jobs = getattr(self._reaction_jobs, "jobs", None)
            if settle and jobs is not None:
                jobs.append(job)
            return job

    def _is_current(self, job: Job) -> bool:
        """Whether ``job``'s reports may be shown: it is the newest job and the widget is open. Ask under
        ``self._locked()`` and act under the same hold."""
        return self._jobs.is_current(job) and not self._closed

    def _report(self, job: Job, *, throttle: bool = False, **values) -> bool:
        """Push ``values`` from ``job`` if it is still the newest job (and, with ``throttle``, if a report is due).
        Returns whether they were pushed."""
        if throttle and not job.due(PROGRESS_SECONDS):
            return False
        with self._locked():
            if not self._is_current(job):
                return False
            self._push(**values)
            return True

    def _job_done(self, job: Job, result):
        with self._locked():
            if not self._is_current(job):
                return
            self._push(**(result or {}), running=False)

    def _job_failed(self, job: Job, exc: BaseException, trace: str, revert: dict | None):
        with self._locked():
            if not self._is_current(job):
                return
            # Our own errors say what to do; anything else is a bug, so its traceback goes to the kernel log too.
            if isinstance(exc, CnnWidgetError):
                message = str(exc)
            else:
                message = f"{type(exc).__name__}: {exc}"
                _log.error("%s: a job failed:\n%s", type(self).__name__, trace)
            self._push(**(revert or {}), running=False, error=message, status="stopped")

    # -- children and links ------------------------------------------------------------------------------------

    def _own(self, *widgets):
        """Widgets this one made that are not in its synced traits: closed with it. Returns the first."""
        self._owned.extend(widgets)
        return widgets[0] if widgets else None

    def _follow(self, leader: "CnnWidget", names, update: Callable[[], None]) -> Callable[[], None]:
        """Call ``update()`` (which reads ``leader``'s current state) after each change of ``names`` on ``leader``,
        holding both widgets' locks; returns the function that removes the link (also run by either close)."""
        names = [names] if isinstance(names, str) else list(names)

        def on_leader(_change):
            with leader._locked(), self._locked():
                if not self._closed:
                    update()

        def unlink():
            with contextlib.suppress(ValueError):
                leader.unobserve(on_leader, names=names)
            for widget in (self, leader):
                with contextlib.suppress(ValueError):
                    widget._links.remove(unlink)

        leader.observe(on_leader, names=names)
        self._links.append(unlink)
        leader._links.append(unlink)
        return unlink


@contextlib.contextmanager
def _counted(depths: dict):
    """Count this thread in ``depths`` (thread ident -> depth) for the block."""
    ident = threading.get_ident()
    depths[ident] = depths.get(ident, 0) + 1
    try:
        yield
    finally:
        depths[ident] -= 1
        if not depths[ident]:
            del depths[ident]


def _widgets_in(widget: ipywidgets.Widget):
    """The widgets held in ``widget``'s synced traits (and its layout/style), without creating any."""
    values = widget._trait_values
    for name in [*widget.keys, "layout", "style"]:
        yield from _flatten(values.get(name))


def _flatten(value):
    if isinstance(value, ipywidgets.Widget):
        yield value
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _flatten(v)
    elif isinstance(value, dict):
        for v in value.values():
            yield from _flatten(v)


def _close_tree(widget: ipywidgets.Widget, seen: set):
    """Close ``widget`` and every widget inside it (a bqplot figure's marks, scales, axes, layout, ...)."""
    if id(widget) in seen:
        return
    seen.add(id(widget))
    for child in list(_widgets_in(widget)):
        _close_tree(child, seen)
    widget.close()
