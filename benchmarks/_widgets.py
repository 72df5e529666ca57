"""Widgets outside a kernel, for benchmarks: import the ActivationGrid, and record what its comms would send.

``record_comms()`` replaces ``comm.create_comm`` (what ipywidgets calls to open a widget's comm) with
``RecordingComm``, which serializes every message the way ipykernel does (a ``jupyter_client.Session``: JSON
header, parent header, metadata and content frames, signed, plus the raw binary buffers) and keeps the sizes. So the
bytes counted are the bytes a kernel would put on its IOPub socket, without a kernel.

``import_activation_grid()`` imports ``cnnwidget.widgets.activation_grid.ActivationGrid``; when the view's ES
module (js/activation_grid.js) is not written yet, it imports it with a stub ``_esm`` string instead and says so.
The ES module only matters in a browser: the Python side, and every byte of a grid update, are the real ones.
"""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path

import comm
from comm.base_comm import BaseComm
from jupyter_client.session import Session

_STUB_ESM = "export default { render() {} };  // benchmarks/_widgets.py stub: js/activation_grid.js missing\n"


def import_activation_grid():
    """(ActivationGrid, note): the class, and a note for the output saying whether its ES module was stubbed."""
    try:
        from cnnwidget.widgets.activation_grid import ActivationGrid

        return ActivationGrid, "ActivationGrid imported as is"
    except Exception as exc:  # noqa: BLE001 - a missing js file shows up as FileNotFoundError or BundleError
        first = exc
    if "activation_grid.js" not in str(first) and not isinstance(first, FileNotFoundError):
        raise first
    for name in [m for m in sys.modules if m == "cnnwidget.widgets" or m.startswith("cnnwidget.widgets.")]:
        del sys.modules[name]
    import cnnwidget

    path = Path(cnnwidget.__file__).parent / "widgets" / "_esm.py"
    spec = importlib.util.spec_from_file_location("cnnwidget.widgets._esm", path)
    esm = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = esm
    spec.loader.exec_module(esm)
    real = esm.bundle

    def bundle(entry):
        try:
            return real(entry)
        except (FileNotFoundError, esm.BundleError):
            return _STUB_ESM

    esm.bundle = bundle
    from cnnwidget.widgets.activation_grid import ActivationGrid

    reason = str(first).splitlines()[0][:120]
    return ActivationGrid, f"ActivationGrid imported with a STUB ES module ({type(first).__name__}: {reason})"


@dataclass
class Sent:
    """One comm message as a kernel would send it."""

    msg_type: str
    comm_id: str
    frames: int  # bytes of the ZMQ frames before the buffers: topic, delimiter, HMAC, header, parent, metadata, content
    content: int  # bytes of the JSON content frame alone (the comm data, its comm_id, ...)
    buffers: dict = field(default_factory=dict)  # trait name -> bytes of its binary buffer
    keys: tuple = ()  # state keys of an "update", the binary ones included

    @property
    def total(self) -> int:
        return self.frames + sum(self.buffers.values())


class RecordingComm(BaseComm):
    """A comm that serializes like ipykernel's and appends a ``Sent`` to ``RecordingComm.log``."""

    log: list = []
    session = Session(key=b"cnnwidget-benchmark", username="kernel")
    # The message a kernel answers to; its header is the parent header of every message sent meanwhile.
    parent = session.msg("execute_request", content={"code": "grid.layer = 'block_6_expand_relu'"})

    def publish_msg(self, msg_type, data=None, metadata=None, buffers=None, **keys):
        data = {} if data is None else data
        content = dict(data=data, comm_id=self.comm_id, **keys)
        msg = self.session.msg(msg_type, content=content, parent=self.parent, metadata=metadata or {})
        frames = self.session.serialize(msg, ident=self.topic)
        paths = data.get("buffer_paths") or data.get("state", {}).get("buffer_paths") or []
        names = ["/".join(str(p) for p in path) for path in paths]
        sizes = {}
        for i, buf in enumerate(buffers or []):
            sizes[names[i] if i < len(names) else f"buffer{i}"] = memoryview(buf).nbytes
        state = data.get("state", {})
        RecordingComm.log.append(Sent(msg_type, self.comm_id, sum(len(f) for f in frames), len(frames[-1]), sizes,
                                      (tuple(state) if isinstance(state, dict) else ()) + tuple(sizes)))


def record_comms():
    """From now on every new widget's comm is a RecordingComm. Returns the shared log (a list; clear it freely)."""
    comm.create_comm = RecordingComm
    return RecordingComm.log
