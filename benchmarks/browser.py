"""Time from a Python-side ActivationGrid update to changed pixels on the grid canvas, in JupyterLab (chromium).

    .venv/bin/python benchmarks/browser.py [--repeats 15] [--warmup 3] [--only a|b]

Cases (synthetic Keras models, one Conv2D each, random inputs; two images, so ``image_index`` can alternate):
  (a) 64 channels of 56x56   Input(56, 56, 3) -> Conv2D(64, 3, "same"),  page_size=64,  max_tile=56
  (b) 512 channels of 28x28  Input(28, 28, 3) -> Conv2D(512, 3, "same"), page_size=512, max_tile=56
Both grids are shown in one notebook opened with the test harness (tests/harness/lab.py: one JupyterLab server,
headless chromium at 1400x1000, the websocket hook that timestamps every kernel frame the page receives).

One update = ``grid.image_index = k`` (alternating 1, 0, 1, ...) run in the notebook's kernel with
``lab.kernel_exec``. Activations of both images are cached after the warm-up, so the kernel's part is what every
update costs: the page's tiles quantized, strip, image and predictions set, one comm message sent. Timestamps, all on
the same machine's wall clock (page times are ``performance.timeOrigin + performance.now()``):

  t0       kernel, ``time.time()`` right before the assignment
  t1       kernel, ``time.time()`` right after it returned (the update is handed to the IOPub thread by then)
  arrive   page, the websocket ``message`` event of the view's comm_msg ``update`` carrying buffers (the harness hook
           listens before JupyterLab does, so this is before ipywidgets has decoded anything)
  pixels   page, a MutationObserver on the grid canvas: drawGrid sets the canvas's width/height/data-channels right
           after its ``putImageData``, so the observer's callback (a microtask at the end of that rAF callback) is
           the moment the new pixels are in the canvas. Painting to the screen follows in the same frame. The
           callback then hashes the canvas (after taking the time) to check the pixels really changed.

Columns (milliseconds, median and p90 over the repeats):
  whole      pixels - t0   Python assignment to changed pixels: kernel compute + send + transport + browser
  python     t1 - t0       the assignment in the kernel (compute, serialize, hand-off)
  transport  arrive - t1   IOPub thread -> ZMQ -> jupyter_server -> websocket -> page (can be ~0 or negative when
                           the IOPub thread sends before the assignment returns)
  browser    pixels - arrive   decode in ipywidgets, trait change events, wait for the next animation frame,
                               drawGrid (LUTs, paint every tile, putImageData)
Target: whole <= 50 ms for (a). Benchmarks print; nothing here fails.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _timing import machine_note, verdict  # noqa: E402
from harness import env  # noqa: E402

env.setup()  # quiet TF, isolated Jupyter dirs, the python3 kernelspec that runs this interpreter

from harness.lab import LabHarness  # noqa: E402

TARGET_MS = 50.0

SETUP = textwrap.dedent("""\
    import time, json, keras, numpy as np
    import cnnwidget as cw
    keras.utils.set_random_seed(0)

    def conv_model(side, filters, name):
        inp = keras.Input((side, side, 3))
        x = keras.layers.Conv2D(filters, 3, padding="same", name=name)(inp)
        out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(x))
        return keras.Model(inp, out)

    rng = np.random.default_rng(0)
    """)
CASES = {  # name: (label, grid variable, cell that shows it)
    "a": ("64 ch of 56x56", "grid_a",
          'grid_a = cw.ActivationGrid(conv_model(56, 64, "conv56"), rng.random((2, 56, 56, 3)), layer="conv56",\n'
          '                           page_size=64, max_tile=56)\ngrid_a'),
    "b": ("512 ch of 28x28", "grid_b",
          'grid_b = cw.ActivationGrid(conv_model(28, 512, "conv28"), rng.random((2, 28, 28, 3)), layer="conv28",\n'
          '                           page_size=512, max_tile=56)\ngrid_b'),
}

INSTALL_JS = r"""
(i) => {
  const canvas = document.querySelectorAll('.jp-Notebook .cnnw-grid-canvas')[i];
  const hash = () => {
    const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
    let h = 0x811c9dc5;
    for (let k = 0; k < d.length; k++) h = Math.imul(h ^ d[k], 0x01000193);
    return h >>> 0;
  };
  const rec = {events: [], last: hash()};
  (window.__bench ||= {})[i] = rec;
  new MutationObserver(() => {
    const t = performance.timeOrigin + performance.now();
    const h = hash();
    rec.events.push({t, changed: h !== rec.last, w: canvas.width, h: canvas.height});
    rec.last = h;
  }).observe(canvas, {attributes: true});
  return {w: canvas.width, h: canvas.height, channels: canvas.dataset.channels.split(',').length};
}
"""


def pct(values, q):
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def one_update(lab, page, nth: int, var: str, view_id: str, index: int) -> dict:
    n_events = page.evaluate("(i) => window.__bench[i].events.length", nth)
    n_frames = page.evaluate("() => window.__cwWS.log.length")
    out = lab.kernel_exec(page, f"_t0 = time.time(); {var}.image_index = {index}; _t1 = time.time()\n"
                                f"print(repr(_t0), repr(_t1))")
    if out["status"] != "ok":
        raise RuntimeError(f"{out['ename']}: {out['evalue']}\n{out['traceback']}")
    t0, t1 = (1000 * float(v) for v in out["stdout"].split())
    page.wait_for_function("([i, n]) => window.__bench[i].events.slice(n).some((e) => e.changed)",
                           arg=[nth, n_events], timeout=30_000, polling=20)
    event = next(e for e in page.evaluate("([i, n]) => window.__bench[i].events.slice(n)", [nth, n_events])
                 if e["changed"])
    frames = page.evaluate("(n) => window.__cwWS.log.slice(n).map((r) => Object.assign({}, r, "
                           "{t: performance.timeOrigin + r.t}))", n_frames)
    arrive = [r["t"] for r in frames if r["dir"] == "in" and r["msg_type"] == "comm_msg"
              and r["method"] == "update" and r["comm_id"] == view_id and r["nbuffers"] > 0]
    if len(arrive) != 1:
        raise RuntimeError(f"expected one update with buffers for the view, saw {len(arrive)}")
    return {"whole": event["t"] - t0, "python": t1 - t0, "transport": arrive[0] - t1,
            "browser": event["t"] - arrive[0], "canvas": (event["w"], event["h"])}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--only", choices=sorted(CASES))
    args = ap.parse_args()
    names = [args.only] if args.only else list(CASES)

    root = Path(tempfile.mkdtemp(prefix="cnnwidget-bench-"))
    lab = LabHarness(root_dir=root)
    try:
        lab.start()
        page = lab.open_notebook([SETUP] + [CASES[n][2] for n in names], name="bench_browser")
        lab.run_all(page)
        lab.wait_for(page, ".jp-Notebook .cnnw-grid-canvas")
        page.wait_for_function(f"() => document.querySelectorAll('.jp-Notebook .cnnw-grid-canvas').length === "
                               f"{len(names)} && [...document.querySelectorAll('.jp-Notebook .cnnw-grid-canvas')]"
                               ".every((c) => c.width > 0)", polling=100)
        print(f"browser.py: Python update -> changed pixels on the grid canvas, JupyterLab + {lab.browser.version} "
              f"(headless), {machine_note()}")
        print(f"{args.warmup} warm-up + {args.repeats} timed updates per case (grid.image_index alternating); ms")
        print(f"{'case':<17} {'canvas':>10} | {'whole med':>9} {'p90':>6} | {'python':>6} {'p90':>6} | "
              f"{'transport':>9} {'p90':>6} | {'browser':>7} {'p90':>6} | target")
        for nth, name in enumerate(names):
            label, var, _ = CASES[name]
            page.locator(".jp-Notebook .cnnw-grid").nth(nth).scroll_into_view_if_needed()
            view_id = lab.kernel_exec(page, f"print({var}.view.model_id)")["stdout"].strip()
            page.evaluate(INSTALL_JS, nth)
            runs = []
            for r in range(args.warmup + args.repeats):
                result = one_update(lab, page, nth, var, view_id, (r + 1) % 2)
                if r >= args.warmup:
                    runs.append(result)
                page.wait_for_timeout(100)
            col = {k: [run[k] for run in runs] for k in ("whole", "python", "transport", "browser")}
            w, h = runs[-1]["canvas"]
            med = statistics.median(col["whole"])
            target = f"{verdict(med, TARGET_MS)} (<= {TARGET_MS:.0f})" if name == "a" else "-"
            print(f"({name}) {label:<13} {f'{w}x{h}':>10} | {med:9.1f} {pct(col['whole'], 0.9):6.1f} | "
                  f"{statistics.median(col['python']):6.1f} {pct(col['python'], 0.9):6.1f} | "
                  f"{statistics.median(col['transport']):9.1f} {pct(col['transport'], 0.9):6.1f} | "
                  f"{statistics.median(col['browser']):7.1f} {pct(col['browser'], 0.9):6.1f} | {target}")
        skew = page.evaluate("() => performance.timeOrigin + performance.now() - Date.now()")
        print(f"page clock vs Date.now(): {skew:+.1f} ms (timestamps above use the former)")
    finally:
        lab.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
