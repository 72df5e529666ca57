"""Which Integrated Gradients baseline gives the most faithful maps on the demo model: deletion and insertion AUCs
on held-out demo images for the baselines black, mean, blur and noise, beside a random map's.

    .venv/bin/python benchmarks/ig_baseline.py [--n 48] [--seed 11] [--steps 50]

Data: ``demo.shapes(n, seed)``; seeds 0 and 1 trained the model (cnnwidget/demo/train.py), so the default 11 is
held out. IG: ``attr.integrated_gradients(probe, x, steps, baseline=b)`` explaining the predicted class.
Curves: ``attr.deletion`` / ``attr.insertion`` (10 steps, target probability) with pixels ranked as the
AttributionMap view shows the map (``sign``): "absolute" (|map|) and "positive" (max(map, 0)). Removed pixels
become each image's mean colour (the metrics' default) or its blur: a baseline tends to win on the fill it
resembles (mean-fill insertion starts where a "mean" IG path starts), so both are averaged. (A black fill is no
judge on this model: 10% of pixels turned black take every prediction to ~0, so every map scores alike.) Reference:
``attr.random_reference`` (4 random orders per image). Also the completeness gap |sum(map) - (f(x) - f(x'))| /
|f(x) - f(x')| (median, max) at ``--steps``.

Pick: the highest insertion - deletion with sign "absolute", averaged over the two fills (± its standard error
over images); the line ``pick`` also gives the winner per sign and fill. Nothing fails: it prints.
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

BASELINES = ("black", "mean", "blur", "noise")
SIGNS = ("absolute", "positive")
FILLS = ("mean", "blur")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=48, help="held-out images")
    ap.add_argument("--seed", type=int, default=11, help="demo.shapes seed (0 and 1 trained the model)")
    ap.add_argument("--steps", type=int, default=50, help="IG path steps")
    ap.add_argument("--curve-steps", type=int, default=10)
    args = ap.parse_args()
    start = time.perf_counter()
    probe = ModelProbe(demo.load_model())
    x = demo.shapes(args.n, seed=args.seed).images
    curve = dict(steps=args.curve_steps)
    print(f"IG baselines on {args.n} held-out demo images (seed {args.seed}), {args.steps} steps; {machine_note()}")

    rows = {}  # (baseline, sign, fill) -> (deletion (N,), insertion (N,))
    gaps = {}
    for b in BASELINES:
        maps, gap = attr.integrated_gradients(probe, x, steps=args.steps, baseline=b, return_gap=True)
        gaps[b] = np.abs(gap)
        for sign in SIGNS:
            for fill in FILLS:
                rows[b, sign, fill] = (attr.deletion(probe, x, maps, sign=sign, baseline=fill, **curve),
                                       attr.insertion(probe, x, maps, sign=sign, baseline=fill, **curve))

    def margin(b, sign):  # (N,) insertion - deletion, averaged over the fills
        return np.mean([rows[b, sign, f][1] - rows[b, sign, f][0] for f in FILLS], 0)

    ref = {fill: attr.random_reference(probe, x, baseline=fill, **curve) for fill in FILLS}

    head = "".join(f"{f'del/{fill}':>11}{f'ins/{fill}':>11}" for fill in FILLS)
    print(f"\n{'baseline':<9}{'sign':<10}{head}{'ins-del (2 fills)':>20}{'gap median':>12}{'gap max':>9}")
    for b in BASELINES:
        for sign in SIGNS:
            cells = "".join(f"{rows[b, sign, f][0].mean():>11.3f}{rows[b, sign, f][1].mean():>11.3f}" for f in FILLS)
            diff = margin(b, sign)
            se = diff.std(ddof=1) / np.sqrt(len(diff))
            print(f"{b:<9}{sign:<10}{cells}{diff.mean():>13.3f} ± {se:.3f}"
                  f"{np.median(gaps[b]):>12.4f}{gaps[b].max():>9.4f}")
    cells = "".join(f"{ref[f]['deletion'].mean():>11.3f}{ref[f]['insertion'].mean():>11.3f}" for f in FILLS)
    diff = np.mean([ref[f]["insertion"] - ref[f]["deletion"] for f in FILLS], 0)
    print(f"{'random':<9}{'-':<10}{cells}{diff.mean():>13.3f}")

    def best(sign, fill):
        return max(BASELINES, key=lambda b: (rows[b, sign, fill][1] - rows[b, sign, fill][0]).mean())

    pick = max(BASELINES, key=lambda b: margin(b, "absolute").mean())
    others = {f"{sign}/{fill}": best(sign, fill) for sign in SIGNS for fill in FILLS}
    runner_up = max((b for b in BASELINES if b != pick), key=lambda b: margin(b, "absolute").mean())
    paired = margin(pick, "absolute") - margin(runner_up, "absolute")  # same images: the paired difference
    print(f"\n{pick} - {runner_up}: {paired.mean():+.3f} ± {paired.std(ddof=1) / np.sqrt(len(paired)):.3f} "
          f"(insertion - deletion, paired over images), better on {(paired > 0).sum()} of {len(paired)} images")
    print(f"\npick: {pick} (best insertion - deletion, |map|, mean of fills); best per sign/fill: {others}; "
          f"default now: {attr.gradients.DEFAULT_BASELINE}; {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
