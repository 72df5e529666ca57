"""core.atlas: the layout's quality, the pass against its floor, and the pass's memory against the data's size.
Prints; asserts nothing.

    .venv/bin/python benchmarks/atlas.py                       # all three, defaults below
    .venv/bin/python benchmarks/atlas.py --quality 600 --speed 0 --memory   # quality only

Quality (``--quality N``, demo images with labels): per layer (``gap``, ``block4_relu``), the share of each vector's 5
nearest neighbours with its label, in the layer's own space (cosine) and in the 2-D layout of t-SNE (the fallback)
and of PCA (what a linear layout keeps), and the cells' class purity on a 20 x 20 grid (weighted by count). A layout
that keeps neighbourhoods scores close to the full space.

Speed (``--speed N``): ``collect`` (block4_relu, 2,000 vectors, thumbnails of 32 px) over N demo images from a
tf.data pipeline (batches of 128) as images/s and as a ratio to plain ``model.predict`` on the same pipeline (the
floor), timed interleaved three times after a trace pass.

Memory (``--memory M1 M2``): the pass over M images made on the fly by a generator (demo.shapes in chunks of 500),
in a fresh process per M; the largest resident set size (/proc/self/statm) sampled at every progress call; their
ratio (flat: the reservoir holds ``samples`` vectors whatever M).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEMORY = """
import os, sys
import numpy as np
from cnnwidget import demo
from cnnwidget.core import ModelProbe, atlas
page = os.sysconf("SC_PAGE_SIZE")
peak = [0]
def rss(*_):
    with open("/proc/self/statm") as f:
        peak[0] = max(peak[0], int(f.read().split()[1]) * page)
def chunks(n):
    for i in range(0, n, 500):
        yield demo.shapes(min(500, n - i), seed=100 + i).images
probe = ModelProbe(demo.load_model())
atlas.collect(probe, chunks(500), "block4_relu", samples=2000)  # traces
peak[0] = 0
a = atlas.collect(probe, chunks(int(sys.argv[1])), "block4_relu", samples=2000, progress=rss)
rss()
print(peak[0], a.images, a.samples)
"""


def knn_agreement(y, labels, k=5):
    import numpy as np

    d = ((y[:, None] - y[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, 1)[:, :k]
    return float((labels[nn] == labels[:, None]).mean())


def quality(n):
    import numpy as np

    from cnnwidget import demo
    from cnnwidget.core import ModelProbe, atlas

    probe = ModelProbe(demo.load_model())
    data = demo.shapes(n, seed=4)
    for layer in ("gap", "block4_relu"):
        s = atlas.collect(probe, (data.images, data.labels), layer, samples=n, thumbnail=0)
        full = knn_agreement(atlas._unit_rows(s.vectors.astype(float)), s.label)
        print(f"{layer}: {s.samples} vectors; 5-NN with the same label in the layer's space (cosine) {full:.3f}")
        for method in ("tsne", "pca"):
            t = time.perf_counter()
            coords, _ = atlas.layout_2d(s.vectors, method, seed=0)
            seconds = time.perf_counter() - t
            a = atlas.place(s, coords, method, 20)
            purity = np.average(a.cells.support, weights=a.cells.count)
            print(f"  {method}: 5-NN same label {knn_agreement(coords.astype(float), s.label):.3f}, cell purity "
                  f"{purity:.3f} over {len(a.cells)} cells, layout {seconds:.1f} s")


def speed(n):
    import numpy as np
    import tensorflow as tf

    from cnnwidget import demo
    from cnnwidget.core import ModelProbe, atlas

    probe = ModelProbe(demo.load_model())
    images = (demo.shapes(n, seed=9).images * 255).astype(np.uint8)
    ds = tf.data.Dataset.from_tensor_slices(images).batch(128).map(lambda x: tf.cast(x, tf.float32) / 255.0)
    atlas.collect(probe, ds.take(2), "block4_relu", samples=64)
    probe.model.predict(ds.take(2), verbose=0)
    for _ in range(3):
        t = time.perf_counter()
        probe.model.predict(ds, verbose=0)
        floor = time.perf_counter() - t
        t = time.perf_counter()
        atlas.collect(probe, ds, "block4_relu", samples=2000)
        took = time.perf_counter() - t
        print(f"{n} images: predict {n / floor:.0f} img/s, atlas pass {n / took:.0f} img/s, ratio {floor / took:.2f}")


def memory(sizes):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT)}
    peaks = []
    for m in sizes:
        out = subprocess.run([sys.executable, "-c", MEMORY, str(m)], capture_output=True, text=True, env=env,
                             check=True).stdout.split()
        peaks.append(int(out[0]))
        print(f"{m} images: peak RSS during the pass {int(out[0]) / 2**20:.0f} MiB ({out[2]} vectors kept)")
    print(f"ratio largest / smallest data set: {peaks[-1] / peaks[0]:.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", type=int, default=600, help="images for the layout's quality (0 skips)")
    parser.add_argument("--speed", type=int, default=4000, help="images for the speed (0 skips)")
    parser.add_argument("--memory", type=int, nargs="*", default=[3000, 9000],
                        help="data set sizes, each > samples so the reservoir is full (none skips)")
    args = parser.parse_args()
    if args.quality:
        quality(args.quality)
    if args.speed:
        speed(args.speed)
    if args.memory:
        memory(args.memory)


if __name__ == "__main__":
    main()
