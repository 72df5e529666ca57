"""Export figures per widget kind: the HTML file's size over the raw bytes it holds, and the time to export.

    .venv/bin/python benchmarks/export.py [--repeat 3] [--out DIR]

Each widget is built on the demo model (small settings), computed (``wait``), then exported with ``export_html``
(best of ``--repeat`` runs) and saved with ``save_npz``. Printed per kind:

- ``file``: the HTML file's bytes; ``raw``: the raw bytes it holds (binary arrays unencoded + JSON state + the
  JavaScript: our ES modules and, when the widget has bqplot/ipywidgets children, the installed ipywidgets, bqplot
  and bqscales bundles); ``ratio`` = file / raw (target <= 1.4);
- ``arrays``: the binary buffers' raw bytes and their ratio once base64-encoded in the file (4/3);
- ``js``: the loader, the shim and the installed libraries (~1.9 MB, most of a chart widget's file); the widgets' own
  ES modules are counted in the state;
- ``export ms``: time of ``export_html``; ``npz``: the .npz's bytes.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def builders():
    import cnnwidget as cw
    from cnnwidget import demo

    data = demo.shapes(32, seed=0)
    images = data.images[:3]
    model = demo.load_model()
    probe = cw.ModelProbe(model, class_names=data.class_names)
    kinds = {
        "ActivationGrid": lambda: cw.ActivationGrid(probe, images),
        "FeatureVisualization": lambda: _rendered(cw.FeatureVisualization(probe, "block2_conv", 0, steps=8, size=64)),
        "AttributionMap": lambda: cw.AttributionMap(probe, images, ("saliency", "grad_cam", "occlusion"),
                                                    curve_steps=8),
        "FilterGrid": lambda: cw.FilterGrid(probe),
        "TrainingMonitor": lambda: cw.TrainingMonitor(),
        "LayerSimilarity": lambda: cw.LayerSimilarity(model, model, data.images, layers=["block1_conv", "gap"]),
        "UncertaintyView": lambda: cw.UncertaintyView(probe, images, samples=8),
        "RobustnessView": lambda: cw.RobustnessView(probe, images, steps=4, curve_epsilons=[0.0, 0.03]),
        "AttentionMap": lambda: cw.AttentionMap(demo.load_hybrid_model(), images),
    }
    # widgets added later the same day, when present
    later = {
        "ChannelCard": lambda cls: cls(probe, data.images, "block2_conv", fv_steps=8),
        "DatasetExamples": lambda cls: cls(probe, data.images, "block2_conv"),
        "ActivationAtlas": lambda cls: cls(probe, data.images, "block2_conv", grid=8),
        "Explorer": lambda cls: cls(probe, images),
    }
    for name, make in later.items():
        try:
            cls = getattr(cw, name)
        except (AttributeError, ImportError):
            continue
        kinds[name] = (lambda cls=cls, make=make: make(cls))
    return kinds


def _rendered(fv):
    fv.render()
    return fv


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", default=None, help="folder for the files (default: a temp folder)")
    args = parser.parse_args()
    out = Path(args.out or tempfile.mkdtemp(prefix="cnnw-export-"))
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for kind, make in builders().items():
        try:
            w = make()
        except Exception as exc:  # noqa: BLE001 - a widget whose constructor needs more than (model, images)
            print(f"{kind}: not built ({type(exc).__name__}: {str(exc)[:100]})")
            continue
        try:
            w.wait(600)
            best, info = float("inf"), None
            for _ in range(args.repeat):
                start = time.perf_counter()
                info = w.export_html(out / f"{kind}.html")
                best = min(best, time.perf_counter() - start)
            npz = w.save_npz(out / f"{kind}.npz").stat().st_size
            rows.append((kind, info, best, npz))
        finally:
            w.close()
    head = (f"{'widget':<22}{'file':>11}{'raw':>11}{'ratio':>7}{'arrays':>10}{'b64':>6}{'js':>11}{'models':>7}"
            f"{'export ms':>10}{'npz':>9}")
    print(head)
    print("-" * len(head))
    for kind, info, best, npz in rows:
        array_ratio = f"{info['array_ratio']:.2f}" if info["array_bytes"] else "-"
        print(f"{kind:<22}{info['bytes']:>11,}{info['raw_bytes']:>11,}{info['ratio']:>7.3f}{info['array_bytes']:>10,}"
              f"{array_ratio:>6}{info['library_bytes']:>11,}{info['models']:>7}{best * 1000:>10.0f}{npz:>9,}")
    worst = max((r[1]["ratio"] for r in rows), default=float("nan"))
    print(f"\nworst ratio {worst:.3f} (target <= 1.4); files in {out}")


if __name__ == "__main__":
    main()
