"""Smoke tests of the shared harness itself, with plain ipywidgets / anywidget (no cnnwidget code)."""
from __future__ import annotations

import sys
import textwrap
import time

import pytest

from harness.kernel import KernelError, comm_msgs

SLIDER = "import ipywidgets as W\ns = W.IntSlider(value=7, min=0, max=100, description='harness')\ns"

DOT = textwrap.dedent(
    '''
    import anywidget, traitlets

    class Dot(anywidget.AnyWidget):
        _esm = """
        export default {
          render({ model, el }) {
            const c = document.createElement('canvas');
            c.width = 64; c.height = 64; c.className = 'harness-canvas';
            const g = c.getContext('2d');
            const draw = () => {
              g.clearRect(0, 0, 64, 64); g.fillStyle = model.get('color'); g.fillRect(8, 8, 32, 32);
            };
            draw();
            model.on('change:color', draw);
            el.appendChild(c);
          }
        };
        """
        color = traitlets.Unicode('red').tag(sync=True)

    d = Dot()
    d
    '''
)


# ---------------------------------------------------------------------------------------------- kernel
@pytest.mark.kernel
def test_kernel_runs_this_interpreter_in_repo_root(kns):
    import os

    assert kns.eval("__import__('sys').executable") == sys.executable
    assert kns.eval("__import__('os').getcwd()") == os.path.realpath(os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.kernel
def test_intslider_comm_open_and_update(kns):
    res = kns.execute(SLIDER)
    opened = res.comm_open("IntSliderModel")
    state = opened["content"]["data"]["state"]
    assert state["value"] == 7 and state["description"] == "harness"
    comm_id = opened["content"]["comm_id"]
    assert kns.model_id("s") == comm_id
    assert any("application/vnd.jupyter.widget-view+json" in d["data"] for d in res.displays)

    kns.kernel.send_update(comm_id, {"value": 42})
    assert kns.eval("s.value") == 42
    assert kns.kernel.widget_state(comm_id)["value"] == 42


@pytest.mark.kernel
def test_errors_and_namespaces(kernel):
    a, b = kernel.namespace(), kernel.namespace()
    a.execute("secret = 1")
    with pytest.raises(KernelError) as err:
        b.execute("def f():\n    raise ValueError('boom from harness')\nf()")
    assert "ValueError: boom from harness" in str(err.value)
    assert "raise ValueError" in str(err.value)  # source lines appear in the traceback
    with pytest.raises(KernelError, match="NameError"):
        b.execute("secret")
    assert a.eval("secret") == 1
    res = b.execute("print('out'); 6 * 7")
    assert res.stdout == "out\n"
    assert res.displays[-1]["data"]["text/plain"] == "42"
    a.close()
    b.close()


@pytest.mark.kernel
def test_worker_thread_binary_updates_reach_iopub_after_idle(kns):
    """The regression named in the recipe: a thread keeps changing a Bytes trait after the cell finished."""
    res = kns.execute(textwrap.dedent(
        """
        import threading, time, anywidget, traitlets

        class Stream(anywidget.AnyWidget):
            _esm = "export default { render({ model, el }) {} };"
            data = traitlets.Bytes(b"").tag(sync=True)
            step = traitlets.Int(0).tag(sync=True)

        w = Stream()

        def work():
            for i in range(1, 21):
                time.sleep(0.1)
                with w.hold_sync():
                    w.data = bytes([i]) * 4096
                    w.step = i

        threading.Thread(target=work, daemon=True).start()
        """
    ))
    idle_at = time.monotonic()
    comm_id = kns.model_id("w")
    assert res.comm_open("AnyModel")["content"]["comm_id"] == comm_id

    def updates(msgs):
        return [m for m in comm_msgs(msgs, comm_id, "update") if "step" in m["content"]["data"]["state"]]

    during = updates(res.messages)
    after = updates(kns.kernel.collect(timeout=30, until=lambda ms: len(during) + len(updates(ms)) >= 20))
    assert len(during) + len(after) == 20
    assert len(after) >= 15, f"only {len(after)} of 20 updates arrived after the cell went idle"
    for m in during + after:
        data = m["content"]["data"]
        i = data["state"]["step"]
        assert data["buffer_paths"] == [["data"]]
        assert m["buffers"] == [bytes([i]) * 4096]
    assert kns.kernel.widget_state(comm_id)["data"] == bytes([20]) * 4096
    assert time.monotonic() - idle_at < 30


@pytest.mark.kernel
@pytest.mark.notebook
def test_nbclient_uses_this_interpreter(tmp_path):
    import os

    import nbformat

    from harness.notebooks import run_notebook

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import sys, os\nprint(sys.executable)\nprint(os.getcwd())")]
    path = tmp_path / "tiny.ipynb"
    nbformat.write(nb, str(path))
    out = run_notebook(path, timeout=120)
    text = out.cells[0].outputs[0]["text"].splitlines()
    assert text[0] == sys.executable
    assert os.path.realpath(text[1]) == os.path.realpath(tmp_path)


# ---------------------------------------------------------------------------------------------- browser
@pytest.mark.browser
@pytest.mark.timeout(300)
def test_lab_slider_renders_and_syncs_to_kernel(lab):
    page = lab.open_notebook([SLIDER], name="harness_slider")
    lab.run_all(page)
    lab.wait_for(page, ".widget-slider")
    assert "7" in page.locator(".widget-readout").first.inner_text()

    handle = lab.wait_for(page, ".widget-slider .noUi-handle")
    handle.focus()
    with lab.ws_traffic(page, settle=1.0) as t:
        page.keyboard.press("ArrowRight")
    sent = t.comm_msgs("out", method="update")
    assert len(sent) >= 1, t
    assert lab.kernel_exec(page, "print(s.value)")["stdout"].strip() == "8"
    assert lab.cell_errors(page) == []
    lab.screenshot(page, "harness_slider")


@pytest.mark.browser
@pytest.mark.timeout(300)
def test_lab_anywidget_canvas_and_ws_counting(lab):
    page = lab.open_notebook([DOT], name="harness_canvas")
    assert len(lab.api("GET", "/api/kernels")) == 1, "kernels of earlier tests were not shut down"
    lab.run_all(page)
    lab.wait_for(page, "canvas.harness-canvas")
    before = lab.canvas_pixels(page, "canvas.harness-canvas")
    assert (before["width"], before["height"]) == (64, 64)
    assert before["non_transparent"] == 32 * 32 and before["non_background"] == 32 * 32

    # A UI-only action causes no kernel->browser comm message.
    with lab.ws_traffic(page) as quiet:
        page.locator("canvas.harness-canvas").hover()
        page.mouse.move(5, 5)
    assert quiet.comm_msgs("in") == [], quiet

    # A kernel-side change arrives as a comm_msg update and redraws the canvas.
    with lab.ws_traffic(page) as t:
        assert lab.kernel_exec(page, "d.color = 'blue'")["status"] == "ok"
    assert len(t.comm_msgs("in", method="update")) == 1, t
    page.wait_for_function(
        "() => { const c = document.querySelector('canvas.harness-canvas');"
        " return c.getContext('2d').getImageData(20, 20, 1, 1).data[2] === 255; }")
    after = lab.canvas_pixels(page, "canvas.harness-canvas")
    assert after["hash"] != before["hash"] and after["non_background"] == 32 * 32
    lab.screenshot(page, "harness_canvas")
