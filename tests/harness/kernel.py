"""One real headless ipykernel for the whole test run, driven over the Jupyter wire as a browser would.

Fixtures (tests/conftest.py)
----------------------------
``kernel``  session-scoped :class:`KernelHarness`; started on first use (TensorFlow imports are paid once per run),
            shut down at the end. Its cwd is the repo root and it runs ``sys.executable`` (see harness/env.py).
``kns``     function-scoped :class:`Namespace`: a fresh globals dict inside that kernel, closed after the test
            (every ipywidgets.Widget left in it is ``.close()``-d). Prefer it to bare ``kernel.execute``: tests share
            the kernel, and a namespace keeps their variables apart. Pending iopub traffic is drained first.

Any test using these fixtures is auto-marked ``kernel`` (tests/conftest.py), so the quick set never starts it.

API
---
``KernelHarness``
    ``execute(code, timeout=60, ns=None, allow_error=False) -> ExecResult``
        Run ``code`` (in the kernel's user namespace, or in namespace ``ns``), wait until the kernel is idle for
        this request and return every iopub message read meanwhile. On an error raises :class:`KernelError`
        whose text holds the traceback (ANSI stripped); on timeout interrupts the kernel (so it stays usable)
        and raises ``TimeoutError``. With ``ns``, a trailing expression is ``display()``-ed like a cell's.
    ``eval(expr, ns=None) -> object``   ``ast.literal_eval(repr(value))`` computed in the kernel (numbers, str,
        bytes, lists, dicts, ...); ``eval_repr(expr, ns=None) -> str`` for anything else.
    ``model_id(expr, ns=None) -> str``  ``expr.model_id``; for ipywidgets 8 this is also the comm id.
    ``widget_state(comm_id) -> dict``   the widget's state *as the frontend knows it*: built from every comm_open
        and comm_msg update / echo_update read so far (and from our own send_update), binary buffers put back at
        their ``buffer_paths`` as ``bytes``. For kernel-side values use ``eval``.
    ``send_update(comm_id, state, buffers=None, buffer_paths=None, wait=True, timeout=30) -> list[msg]``
        Send ``comm_msg {"method": "update", "state": state, "buffer_paths": ...}`` on shell, as the browser does
        when a view changes a trait. ``bytes``/``bytearray``/``memoryview`` values anywhere in ``state`` are moved
        to binary buffers automatically (or pass ``buffers`` + ``buffer_paths`` yourself). With ``wait`` it
        returns the iopub messages up to the kernel's idle for that message, i.e. the update has been applied.
    ``send_comm_msg(comm_id, data, buffers=None, wait=True, timeout=30) -> list[msg]``  any comm_msg
        (e.g. ``{"method": "custom", "content": {...}}`` for ``widget.on_msg`` handlers).
    ``collect(timeout=5.0, until=None, quiet=None) -> list[msg]``
        Read iopub messages that arrive later (e.g. from a worker thread after the cell finished).
        ``until(msgs)`` gets the list collected so far and returns True to stop (checked after each new
        message, never on an empty list); if it never does, ``TimeoutError`` is raised. Without ``until``,
        collects for ``timeout`` seconds, or stops after ``quiet`` seconds with no message.
    ``drain() -> list[msg]``  read whatever is pending now, without waiting.
    ``namespace(name=None) -> Namespace``, ``interrupt()``, ``restart()``, ``ensure_alive()``, ``shutdown()``
    ``comms``  dict comm_id -> {"target", "model_name", "state", "closed"}, the wire state tracker.

``Namespace``  (``kns``): ``execute(code, **kw)``, ``eval(expr)``, ``eval_repr(expr)``, ``model_id(expr)``,
    ``close()``; ``ns.kernel`` is the KernelHarness (for send_update / collect / widget_state).

``ExecResult``: ``msg_id``, ``reply`` (execute_reply content), ``messages`` (all iopub messages read, from any
    parent, in order), ``stdout``, ``stderr`` (stream text of this request only; a worker thread's prints are in
    ``messages`` / ``collect()``), ``displays`` (display_data contents), ``result`` (execute_result
    data dict or None), ``comm_opens``, ``comm_msgs`` (full messages; binary payloads in ``msg["buffers"]`` as
    bytes), and ``comm_open(model_name=None, target="jupyter.widget")`` to pick one.

Messages are jupyter_client dicts: ``msg["msg_type"]``, ``msg["content"]``, ``msg["parent_header"]``,
``msg["buffers"]`` (converted to ``bytes``). Module helpers ``comm_msgs(msgs, comm_id=None, method=None)`` and
``strip_ansi(text)``.

Notes: messages from worker threads may carry any parent header (ipykernel attributes thread output to whichever
request it likes), so ``comm_msgs`` are never filtered by parent. All iopub reading goes through one place that
also maintains ``comms``; reading is single-threaded (call the harness only from the test thread).
"""
from __future__ import annotations

import ast
import os
import re
import subprocess
import textwrap
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any, Callable

from . import env

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class KernelError(RuntimeError):
    """The kernel raised; str() holds ename, evalue and the traceback text."""

    def __init__(self, text: str, result: "ExecResult | None" = None):
        super().__init__(text)
        self.result = result


class KernelDied(RuntimeError):
    pass


def msg_type(msg: dict) -> str:
    return msg.get("msg_type") or msg.get("header", {}).get("msg_type", "")


def comm_msgs(msgs: list[dict], comm_id: str | None = None, method: str | None = None) -> list[dict]:
    """The comm_msg messages in ``msgs``, optionally for one comm and one ``data.method`` (e.g. "update")."""
    out = []
    for m in msgs:
        if msg_type(m) != "comm_msg":
            continue
        c = m["content"]
        if comm_id is not None and c.get("comm_id") != comm_id:
            continue
        if method is not None and c.get("data", {}).get("method") != method:
            continue
        out.append(m)
    return out


@dataclass
class ExecResult:
    msg_id: str
    code: str
    reply: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)

    def _of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if msg_type(m) == kind]

    def _stream(self, name: str) -> str:
        return "".join(
            m["content"]["text"]
            for m in self._of("stream")
            if m["content"].get("name") == name and m["parent_header"].get("msg_id") == self.msg_id
        )

    @property
    def stdout(self) -> str:
        return self._stream("stdout")

    @property
    def stderr(self) -> str:
        return self._stream("stderr")

    @property
    def displays(self) -> list[dict]:
        return [m["content"] for m in self._of("display_data")]

    @property
    def result(self) -> dict | None:
        r = [m["content"]["data"] for m in self._of("execute_result")
             if m["parent_header"].get("msg_id") == self.msg_id]
        return r[-1] if r else None

    @property
    def comm_opens(self) -> list[dict]:
        return self._of("comm_open")

    @property
    def comm_msgs(self) -> list[dict]:
        return self._of("comm_msg")

    def comm_open(self, model_name: str | None = None, target: str | None = "jupyter.widget") -> dict:
        """The last comm_open of a widget model (e.g. "IntSliderModel", "AnyModel"); KeyError if none."""
        for m in reversed(self.comm_opens):
            c = m["content"]
            if target is not None and c.get("target_name") != target:
                continue
            if model_name is not None and c.get("data", {}).get("state", {}).get("_model_name") != model_name:
                continue
            return m
        raise KeyError(f"no comm_open for model {model_name!r} among {len(self.comm_opens)} comm_open messages")


def _set_path(obj: Any, path: list, value: Any) -> None:
    for p in path[:-1]:
        obj = obj[p]
    obj[path[-1]] = value


def _extract_buffers(state: Any, path: list | None = None, paths: list | None = None, bufs: list | None = None):
    """Copy of ``state`` with binary values removed; returns (state, buffer_paths, buffers)."""
    path = [] if path is None else path
    paths = [] if paths is None else paths
    bufs = [] if bufs is None else bufs
    if isinstance(state, dict):
        out = {}
        for k, v in state.items():
            if isinstance(v, (bytes, bytearray, memoryview)):
                paths.append(path + [k])
                bufs.append(bytes(v))
            else:
                out[k] = _extract_buffers(v, path + [k], paths, bufs)[0]
        return out, paths, bufs
    if isinstance(state, (list, tuple)):
        out = []
        for i, v in enumerate(state):
            if isinstance(v, (bytes, bytearray, memoryview)):
                paths.append(path + [i])
                bufs.append(bytes(v))
                out.append(None)
            else:
                out.append(_extract_buffers(v, path + [i], paths, bufs)[0])
        return out, paths, bufs
    return state, paths, bufs


_SETUP = textwrap.dedent(
    '''
    def __cw_make_harness():
        import ast, linecache, sys, types
        from IPython.display import display
        h = types.ModuleType("__cw_harness__")
        h.spaces = {}
        h.counter = [0]

        def space(name):
            if name not in h.spaces:
                h.spaces[name] = {"__name__": "__main__", "__builtins__": __builtins__, "display": display}
            return h.spaces[name]

        def run(name, src):
            ns = space(name)
            h.counter[0] += 1
            fname = "<kns %s #%d>" % (name, h.counter[0])
            linecache.cache[fname] = (len(src), None, src.splitlines(True), fname)
            tree = ast.parse(src, filename=fname, mode="exec")
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            exec(compile(tree, fname, "exec"), ns)
            if last is not None:
                value = eval(compile(last, fname, "eval"), ns)
                if value is not None:
                    display(value)

        def ev(name, expr):
            return eval(expr, space(name)) if name is not None else eval(expr, sys.modules["__main__"].__dict__)

        def rep(name, expr):
            return repr(ev(name, expr))

        def close(name):
            ns = h.spaces.pop(name, None) or {}
            try:
                import ipywidgets
            except ImportError:
                return 0
            n = 0
            for v in list(ns.values()):
                if isinstance(v, ipywidgets.Widget) and getattr(v, "comm", None) is not None:
                    try:
                        v.close()
                        n += 1
                    except Exception:
                        pass
            return n

        h.space, h.run, h.ev, h.rep, h.close = space, run, ev, rep, close
        return h

    __cw_harness__ = __cw_make_harness()
    del __cw_make_harness
    '''
)


class Namespace:
    """A fresh globals dict in the shared kernel (the ``kns`` fixture)."""

    def __init__(self, kernel: "KernelHarness", name: str):
        self.kernel = kernel
        self.name = name

    def execute(self, code: str, **kw) -> ExecResult:
        return self.kernel.execute(code, ns=self.name, **kw)

    def eval(self, expr: str, **kw) -> Any:
        return self.kernel.eval(expr, ns=self.name, **kw)

    def eval_repr(self, expr: str, **kw) -> str:
        return self.kernel.eval_repr(expr, ns=self.name, **kw)

    def model_id(self, expr: str) -> str:
        return self.kernel.model_id(expr, ns=self.name)

    def close(self) -> None:
        if self.kernel.is_alive():
            self.kernel.eval_repr(f"__cw_harness__.close({self.name!r})")

    def __repr__(self) -> str:
        return f"<kernel Namespace {self.name}>"


class KernelHarness:
    def __init__(self, kernel_name: str = env.KERNEL_NAME, cwd: Path | str = env.REPO,
                 extra_env: dict | None = None, log_path: Path | None = None):
        self.kernel_name = kernel_name
        self.cwd = str(cwd)
        self.extra_env = extra_env or {}
        self.log_path = log_path or env.log_path("kernel")
        self.km = None
        self.kc = None
        self.comms: dict[str, dict] = {}
        self.startup_seconds: float | None = None
        self._log = None

    # ------------------------------------------------------------------ lifecycle
    def start(self, timeout: float = 120) -> "KernelHarness":
        from jupyter_client import KernelManager

        t0 = time.perf_counter()
        self._log = open(self.log_path, "wb", buffering=0)  # one log per test run (restarts append)
        self._log.write(f"\n===== kernel start {time.ctime()} =====\n".encode())
        self.km = KernelManager(kernel_name=self.kernel_name)
        kw: dict[str, Any] = {"cwd": self.cwd, "stdout": self._log, "stderr": subprocess.STDOUT}
        if self.extra_env:
            kw["env"] = {**os.environ, **self.extra_env}
        self.km.start_kernel(**kw)
        self._connect(timeout)
        self.startup_seconds = time.perf_counter() - t0
        return self

    def _connect(self, timeout: float) -> None:
        self.kc = self.km.blocking_client()
        self.kc.start_channels()
        try:
            self.kc.wait_for_ready(timeout=timeout)
        except RuntimeError as e:
            raise KernelDied(f"kernel did not become ready: {e}\n{self.log_tail()}") from e
        self.comms.clear()
        self.execute(_SETUP, timeout=timeout)
        self.drain()

    def shutdown(self) -> None:
        if self.kc is not None:
            try:
                self.kc.stop_channels()
            except Exception:
                pass
        if self.km is not None:
            try:
                if self.km.has_kernel:
                    self.km.shutdown_kernel(now=False)
            except Exception:
                try:
                    self.km.shutdown_kernel(now=True)
                except Exception:
                    pass
            try:
                self.km.cleanup_resources()
            except Exception:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        self.km = self.kc = None

    def is_alive(self) -> bool:
        return self.km is not None and self.km.is_alive()

    def interrupt(self, wait: float = 10) -> None:
        self.km.interrupt_kernel()
        if wait:
            try:
                self.collect(timeout=wait, until=lambda ms: msg_type(ms[-1]) == "status"
                             and ms[-1]["content"]["execution_state"] == "idle")
            except TimeoutError:
                pass

    def restart(self, timeout: float = 120) -> None:
        if self.kc is not None:
            self.kc.stop_channels()
        self.km.restart_kernel(now=True)
        self._connect(timeout)

    def ensure_alive(self) -> None:
        if not self.is_alive():
            self.restart()

    def log_tail(self, n: int = 60) -> str:
        try:
            lines = Path(self.log_path).read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "--- kernel log tail ---\n" + "\n".join(lines[-n:])

    # ------------------------------------------------------------------ reading
    def _read(self, timeout: float) -> dict | None:
        try:
            msg = self.kc.get_iopub_msg(timeout=max(timeout, 0.001))
        except Empty:
            return None
        if msg.get("buffers"):
            msg["buffers"] = [bytes(b) for b in msg["buffers"]]
        self._track(msg)
        return msg

    def _track(self, msg: dict) -> None:
        kind = msg_type(msg)
        c = msg.get("content", {})
        if kind == "comm_open":
            data = c.get("data", {}) or {}
            state = dict(data.get("state", {}) or {})
            for path, buf in zip(data.get("buffer_paths", []) or [], msg.get("buffers", []) or []):
                _set_path(state, path, buf)
            self.comms[c["comm_id"]] = {"target": c.get("target_name"), "model_name": state.get("_model_name"),
                                        "state": state, "closed": False}
        elif kind == "comm_msg":
            data = c.get("data", {}) or {}
            if data.get("method") in ("update", "echo_update") and c.get("comm_id") in self.comms:
                self._merge(c["comm_id"], data, msg.get("buffers") or [])
        elif kind == "comm_close" and c.get("comm_id") in self.comms:
            self.comms[c["comm_id"]]["closed"] = True

    def _merge(self, comm_id: str, data: dict, buffers: list) -> None:
        update = dict(data.get("state", {}) or {})
        for path, buf in zip(data.get("buffer_paths", []) or [], buffers):
            _set_path(update, path, bytes(buf))
        self.comms[comm_id]["state"].update(update)

    def _wait_idle(self, parent_id: str, deadline: float, into: list) -> bool:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            msg = self._read(min(left, 1.0))
            if msg is None:
                if not self.km.is_alive():
                    raise KernelDied(f"kernel died\n{self.log_tail()}")
                continue
            into.append(msg)
            if (msg_type(msg) == "status" and msg["parent_header"].get("msg_id") == parent_id
                    and msg["content"].get("execution_state") == "idle"):
                return True

    def drain(self) -> list[dict]:
        out = []
        while True:
            msg = self._read(0.001)
            if msg is None:
                return out
            out.append(msg)

    def collect(self, timeout: float = 5.0, until: Callable[[list], bool] | None = None,
                quiet: float | None = None) -> list[dict]:
        out: list[dict] = []
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while True:
            now = time.monotonic()
            if now >= deadline:
                break
            if quiet is not None and now - last >= quiet:
                return out
            wait = deadline - now if quiet is None else min(deadline - now, quiet - (now - last))
            msg = self._read(min(wait, 0.5))
            if msg is None:
                continue
            last = time.monotonic()
            out.append(msg)
            if until is not None and until(out):
                return out
        if until is not None:
            kinds: dict[str, int] = {}
            for m in out:
                kinds[msg_type(m)] = kinds.get(msg_type(m), 0) + 1
            raise TimeoutError(f"collect: condition not met within {timeout}s; got {len(out)} messages {kinds}")
        return out

    # ------------------------------------------------------------------ executing
    def execute(self, code: str, timeout: float = 60, ns: str | None = None, allow_error: bool = False,
                store_history: bool = False) -> ExecResult:
        if self.kc is None:
            raise RuntimeError("kernel not started")
        src = code if ns is None else f"__cw_harness__.run({ns!r}, {code!r})"
        msg_id = self.kc.execute(src, store_history=store_history, allow_stdin=False, stop_on_error=False)
        res = ExecResult(msg_id=msg_id, code=code)
        deadline = time.monotonic() + timeout
        if not self._wait_idle(msg_id, deadline, res.messages):
            self.interrupt(wait=10)
            raise TimeoutError(f"execute did not finish in {timeout}s (kernel interrupted)\n--- code ---\n{code}\n"
                               f"--- stdout ---\n{res.stdout[-3000:]}\n--- stderr ---\n{res.stderr[-3000:]}")
        res.reply = self._reply(msg_id, deadline=time.monotonic() + 30)
        if res.reply.get("status") == "error" and not allow_error:
            raise KernelError(self._error_text(res.reply, code, res), res)
        return res

    def _reply(self, msg_id: str, deadline: float) -> dict:
        while time.monotonic() < deadline:
            try:
                msg = self.kc.get_shell_msg(timeout=max(0.01, min(1.0, deadline - time.monotonic())))
            except Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                return msg["content"]
        raise TimeoutError("no execute_reply")

    @staticmethod
    def _error_text(content: dict, code: str, res: ExecResult | None = None) -> str:
        tb = strip_ansi("\n".join(content.get("traceback", [])))
        text = f"{content.get('ename')}: {content.get('evalue')}\n{tb}\n--- code ---\n{code}"
        if res is not None and res.stderr:
            text += f"\n--- stderr ---\n{res.stderr[-3000:]}"
        return text

    def _user_expr(self, expr: str, timeout: float) -> str:
        msg_id = self.kc.execute("", silent=True, store_history=False, user_expressions={"r": expr},
                                 allow_stdin=False)
        msgs: list = []
        deadline = time.monotonic() + timeout
        if not self._wait_idle(msg_id, deadline, msgs):
            self.interrupt()
            raise TimeoutError(f"evaluating {expr!r} took more than {timeout}s")
        reply = self._reply(msg_id, deadline=time.monotonic() + 30)
        r = reply["user_expressions"]["r"]
        if r["status"] != "ok":
            raise KernelError(self._error_text(r, expr))
        return r["data"]["text/plain"]

    def eval_repr(self, expr: str, ns: str | None = None, timeout: float = 60) -> str:
        """``repr(expr)`` evaluated in the kernel (in namespace ``ns`` if given)."""
        text = self._user_expr(f"__cw_harness__.rep({ns!r}, {expr!r})", timeout)
        return ast.literal_eval(text)  # text/plain of a str is its repr

    def eval(self, expr: str, ns: str | None = None, timeout: float = 60) -> Any:
        r = self.eval_repr(expr, ns=ns, timeout=timeout)
        try:
            return ast.literal_eval(r)
        except (ValueError, SyntaxError) as e:
            raise ValueError(f"{expr!r} is not a Python literal in the kernel ({r[:200]}); use eval_repr") from e

    def model_id(self, expr: str, ns: str | None = None) -> str:
        return self.eval(f"({expr}).model_id", ns=ns)

    def widget_state(self, comm_id: str) -> dict:
        if comm_id not in self.comms:
            self.drain()
        if comm_id not in self.comms:
            raise KeyError(f"no comm_open seen for {comm_id}; was the widget created after the harness started?")
        return self.comms[comm_id]["state"]

    # ------------------------------------------------------------------ acting as the browser
    def send_comm_msg(self, comm_id: str, data: dict, buffers: list | None = None, wait: bool = True,
                      timeout: float = 30) -> list[dict]:
        content = {"comm_id": comm_id, "data": data}
        msg = self.kc.session.msg("comm_msg", content)
        self.kc.session.send(self.kc.shell_channel.socket, msg, buffers=[bytes(b) for b in (buffers or [])])
        out: list[dict] = []
        if wait and not self._wait_idle(msg["header"]["msg_id"], time.monotonic() + timeout, out):
            raise TimeoutError(f"kernel did not process comm_msg to {comm_id} within {timeout}s")
        return out

    def send_update(self, comm_id: str, state: dict, buffers: list | None = None,
                    buffer_paths: list | None = None, wait: bool = True, timeout: float = 30) -> list[dict]:
        state, paths, bufs = _extract_buffers(state)
        paths = paths + list(buffer_paths or [])
        bufs = bufs + [bytes(b) for b in (buffers or [])]
        data = {"method": "update", "state": state, "buffer_paths": paths}
        if comm_id in self.comms:
            self._merge(comm_id, data, bufs)
        return self.send_comm_msg(comm_id, data, buffers=bufs, wait=wait, timeout=timeout)

    def namespace(self, name: str | None = None) -> Namespace:
        name = name or f"ns_{uuid.uuid4().hex[:8]}"
        return Namespace(self, name)
