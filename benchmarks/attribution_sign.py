"""Which ``sign`` AttributionMap shows (and ranks its faithfulness curves by) by default: deletion and insertion AUCs
of each of its methods on held-out demo images, per sign, beside a random map's.

    .venv/bin/python benchmarks/attribution_sign.py [--n 32] [--seed 11] [--curve-steps 10]

Data: ``demo.shapes(n, seed)``; seeds 0 and 1 trained the model (cnnwidget/demo/train.py), so 11 is held out.
Maps: the widget's default options (IG: 50 steps, the "mean" baseline; occlusion 16/8; LIME 300 samples),
explaining the predicted class. Curves: ``attr.deletion`` / ``attr.insertion`` with the widget's settings (10
steps, the image's mean colour as the fill, target probability) and ``sign=`` each of "positive", "absolute" and
"both"; ``attr.random_reference`` (4 random orders per image) is the reference. A sign is more faithful where
deletion is lower and insertion higher. The widget's default is the sign with the highest insertion - deletion
summed over the signed pixel methods (Integrated Gradients, gradient x input); the line ``pick`` says which.
Nothing fails: it prints.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import numpy as np  # noqa: E402

from _timing import machine_note  # noqa: E402
from cnnwidget import demo  # noqa: E402
from cnnwidget.core import ModelProbe  # noqa: E402
from cnnwidget.core import attribution as attr  # noqa: E402

METHODS = {"saliency": {}, "gradient_x_input": {}, "integrated_gradients": {"steps": 50}, "grad_cam": {},
           "occlusion": {"patch": 16, "stride": 8}, "lime": {"samples": 300}}
SIGNED = ("integrated_gradients", "gradient_x_input")  # the pixel methods whose maps are signed
SIGNS = ("positive", "absolute", "both")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=32, help="held-out images")
    ap.add_argument("--seed", type=int, default=11, help="demo.shapes seed (0 and 1 trained the model)")
    ap.add_argument("--curve-steps", type=int, default=10)
    args = ap.parse_args()
    start = time.perf_counter()
    probe = ModelProbe(demo.load_model())
    x = demo.shapes(args.n, seed=args.seed).images
    curve = dict(steps=args.curve_steps)
    print(f"AttributionMap sign on {args.n} held-out demo images (seed {args.seed}); {machine_note()}")
    ref = attr.random_reference(probe, x, **curve)
    print(f"{'random map':>22}  deletion {ref['deletion'].mean():.3f}  insertion {ref['insertion'].mean():.3f}")
    print(f"{'method':>22}  " + "  ".join(f"{s:>19}" for s in SIGNS) + "   (deletion / insertion, mean)")
    score = {s: 0.0 for s in SIGNS}
    for name, options in METHODS.items():
        maps = attr.METHODS[name](probe, x, **options)
        cells = []
        for sign in SIGNS:
            d = attr.deletion(probe, x, maps, sign=sign, **curve).mean()
            i = attr.insertion(probe, x, maps, sign=sign, **curve).mean()
            cells.append(f"{d:.3f} / {i:.3f}")
            if name in SIGNED:
                score[sign] += i - d
        negative = float((maps < 0).mean())
        print(f"{name:>22}  " + "  ".join(f"{c:>19}" for c in cells) + f"   ({negative:.0%} of pixels < 0)")
    best = max(score, key=score.get)
    print("pick: " + best + "  (insertion - deletion summed over " + ", ".join(SIGNED) + ": "
          + ", ".join(f"{s} {v:.3f}" for s, v in score.items()) + f"); {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
