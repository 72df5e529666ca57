"""core.dataset.channel_examples against its floor, and its memory against the data set's size. Prints; asserts nothing.

    .venv/bin/python benchmarks/dataset.py                      # 20,000 images, memory at 5,000 vs 20,000
    .venv/bin/python benchmarks/dataset.py --images 4000 --memory 1000 4000 --repeats 3
    .venv/bin/python benchmarks/dataset.py --images 0 --memory 5000 20000   # memory only

Speed: one layer's top-16 (and its statistics, computed in the same pass) over N demo images from a tf.data pipeline
(uint8 images in memory, cast to float in the pipeline, batches of 128), as images/s and as a ratio to plain
``model.predict`` on the same pipeline (the floor: the pass cannot be faster than the forward pass it needs).
Target >= 0.9x for one layer, >= 0.8x for each of the four blocks. Timed interleaved (predict, block1, ..., block4)
so that load from other processes hits all alike; traced once on a small set first.

Memory: the pass over M images made on the fly by a generator (demo.shapes in chunks of 500, so the data set is never
in memory), in a fresh process per M; the largest resident set size (/proc/self/statm) sampled at every progress
call of the pass (every 0.25 s) printed for each, and their ratio (target: flat, within 5%). (ru_maxrss is not
used: loading TensorFlow already sets a high-water mark the pass never reaches, so it would read flat whatever the
pass did.) Memory of the pass is O(layers x channels x k), not O(images).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved_medians, machine_note  # noqa: E402

BLOCKS = ("block1_relu", "block2_relu", "block3_relu", "block4_relu")
BATCH = 128

MEMORY = """
import json, resource, sys
import numpy as np, tensorflow as tf
from cnnwidget import demo
from cnnwidget.core import dataset

n = int(sys.argv[1])
model = demo.load_model()

def chunks():
    for i, start in enumerate(range(0, n, 500)):
        yield demo.shapes(min(500, n - start), seed=1000 + i).images

ds = tf.data.Dataset.from_generator(chunks, output_signature=tf.TensorSpec((None, 64, 64, 3), tf.float32))
ds = ds.rebatch(128).prefetch(2)
def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20

before = rss_mib()
peak = [before]
res = dataset.channel_examples(model, ds, "block4_relu", k=16,
                               progress=lambda done, total, partial: peak.append(rss_mib()))
peak.append(rss_mib())
print(json.dumps({"images": res.images, "before_mib": before, "peak_mib": max(peak)}))
"""


def speed(n: int, repeats: int = 1) -> None:
    import numpy as np
    import tensorflow as tf

    from cnnwidget import demo
    from cnnwidget.core import dataset

    model = demo.load_model()
    start = time.perf_counter()
    images = np.concatenate([(demo.shapes(min(2000, n - s), seed=s // 2000).images * 255).astype(np.uint8)
                             for s in range(0, n, 2000)])
    print(f"made {n} demo images in {time.perf_counter() - start:.1f} s ({images.nbytes / 2**20:.0f} MiB as uint8)")

    def pipeline(x):
        return (tf.data.Dataset.from_tensor_slices(x).batch(BATCH)
                .map(lambda b: tf.cast(b, tf.float32) / 255.0).prefetch(2))

    small, full = pipeline(images[:256]), pipeline(images)
    model.predict(small, verbose=0)  # trace everything once
    for layer in BLOCKS:
        dataset.channel_examples(model, small, layer, k=16)
    fns = {"predict": lambda: model.predict(full, verbose=0)}
    for layer in BLOCKS:
        fns[layer] = lambda layer=layer: dataset.channel_examples(model, full, layer, k=16)
    times = interleaved_medians(fns, warmup=0, repeats=repeats)
    floor = n / times["predict"]
    print(f"model.predict (floor): {floor:8.1f} images/s")
    for layer in BLOCKS:
        rate = n / times[layer]
        target = 0.9 if layer == "block4_relu" else 0.8
        print(f"{layer:>12} top-16 + statistics: {rate:8.1f} images/s = {rate / floor:.2f}x the floor "
              f"(target >= {target}x: {'PASS' if rate / floor >= target else 'MISS'})")


def memory(sizes: list[int]) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root)}
    peaks = {}
    for m in sizes:
        run = subprocess.run([sys.executable, "-c", MEMORY, str(m)], capture_output=True, text=True, env=env)
        if run.returncode != 0:
            print(f"memory run at {m} images failed:\n{run.stderr[-2000:]}")
            return
        out = json.loads(run.stdout.strip().splitlines()[-1])
        peaks[m] = out["peak_mib"]
        print(f"block4_relu top-16 over {out['images']:6d} generated images: peak RSS during the pass "
              f"{out['peak_mib']:7.1f} MiB (before it {out['before_mib']:.1f} MiB)")
    lo, hi = min(sizes), max(sizes)
    ratio = peaks[hi] / peaks[lo]
    print(f"peak RSS {hi} / {lo} images: {ratio:.3f} (target within 5%: {'PASS' if abs(ratio - 1) <= 0.05 else 'MISS'})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--memory", type=int, nargs="*", default=[5000, 20000])
    parser.add_argument("--repeats", type=int, default=1, help="interleaved timed rounds (median)")
    args = parser.parse_args()
    print(machine_note())
    if args.images:
        speed(args.images, args.repeats)
    if args.memory:
        memory(args.memory)
    print(machine_note())


if __name__ == "__main__":
    main()
