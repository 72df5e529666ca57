"""core.dataset.channel_examples against its floor, and its memory against the data set's size. Prints; asserts nothing.

    .venv/bin/python benchmarks/dataset.py                      # 20,000 images, memory at 5,000 vs 20,000
    .venv/bin/python benchmarks/dataset.py --images 4000 --memory 1000 4000 --repeats 3
    .venv/bin/python benchmarks/dataset.py --images 0 --memory 5000 20000   # memory only
    .venv/bin/python benchmarks/dataset.py --images 0 --memory --workers 4000  # two local workers against one
    .venv/bin/python benchmarks/dataset.py --layers block4_relu --memory --workers 0   # one block's pass only

Speed: one layer's top-16 (and its statistics, computed in the same pass) over N demo images from a tf.data pipeline
(uint8 images in memory, cast to float in the pipeline, batches of 128), as images/s and as a ratio to plain
``model.predict`` on the same pipeline (the floor: the pass cannot be faster than the forward pass it needs).
Target >= 0.9x for one layer, >= 0.8x for each of the four blocks. Timed interleaved (predict, block1, ..., block4)
so that load from other processes hits all alike. Before the timed rounds everything is traced and compiled once:
predict and each pass on a small set with the full set's last, smaller batch, and each pass on the full set,
cancelled after its first batches (a pass of that length compiles its statistics' XLA loops at its first batch).

Memory: the pass over M images made on the fly by a generator (demo.shapes in chunks of 500, so the data set is never
in memory), in a fresh process per M. The peak is the kernel's high-water mark of the resident set (VmHWM), reset
when the pass starts (/proc/self/clear_refs), printed for each M, and their ratio (target: flat, within 5%).
(ru_maxrss is not used: loading TensorFlow already sets a high-water mark the pass never reaches, so it would read
flat whatever the pass did.) Memory of the pass is O(layers x channels x k), not O(images). The resident set also
sampled at every progress call (every 0.25 s) is printed beside it, its largest value over the first M0 images (the
smallest M) and over all: it swings by some 100 MB within each batch (the forward's tensors, the generator's chunks,
the progress snapshot's copy of the patches), so the largest of 4x more samples is larger by the luck of the draw
(block4, M0 = 5,000: 928 -> 977 MiB as the peak of 40 and 157 samples, while 10-batch windows of the anonymous
resident set sampled every 5 ms had maxima of 474-549 MiB throughout the 157 batches, with no trend).

Workers (``--workers N``, default 4,000 images; 0 skips it): block4_relu's top-16 over N demo images from tf.data,
timed inside each process after a pass over 256 images (traces), in one process with no strategy, then in two local
worker processes under MultiWorkerMirroredStrategy (TF_CONFIG on localhost: each worker reads the pipeline and the
strategy shards it by data, a global batch of 128). Prints the speed-up (the slower worker's time) and whether the
merged top-16 equals the one-process pass. On a 2-core machine already loaded, expect little or none: the point is
that it runs and merges right.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import interleaved_times, machine_note  # noqa: E402

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

def hwm_mib():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:"))

first = int(sys.argv[2])  # images of the smallest run: the sampled peak over as many images
before = rss_mib()
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # the high-water mark starts again from the current resident set
    reset = True
except OSError:
    reset = False
samples = [(0, before)]
res = dataset.channel_examples(model, ds, "block4_relu", k=16,
                               progress=lambda done, total, partial: samples.append((done * 128, rss_mib())))
samples.append((n, rss_mib()))
print(json.dumps({"images": res.images, "before_mib": before, "hwm_mib": hwm_mib() if reset else None,
                  "sampled_mib": max(m for _, m in samples),
                  "sampled_first_mib": max(m for done, m in samples if done <= first)}))
"""


WORKER = """
import json, os, sys, time
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy() if os.environ.get("TF_CONFIG") else None  # before other TF work
import numpy as np
from cnnwidget import demo
from cnnwidget.core import dataset

n = int(sys.argv[1])
model = demo.load_model()
images = np.concatenate([(demo.shapes(min(2000, n - s), seed=s // 2000).images * 255).astype(np.uint8)
                         for s in range(0, n, 2000)])
def pipeline(x):
    return tf.data.Dataset.from_tensor_slices(x).batch(128).map(lambda b: tf.cast(b, tf.float32) / 255.0).prefetch(2)
dataset.channel_examples(model, pipeline(images[:256]), "block4_relu", k=16, strategy=strategy)  # traces
start = time.perf_counter()
res = dataset.channel_examples(model, pipeline(images), "block4_relu", k=16, strategy=strategy)
seconds = time.perf_counter() - start
top = res["block4_relu"]
print(json.dumps({"seconds": seconds, "images": res.images, "indices": top.indices.tolist(),
                  "scores": np.nan_to_num(top.scores).tolist()}))
"""


def workers(n: int) -> None:
    import socket

    import numpy as np

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root), "CUDA_VISIBLE_DEVICES": ""}
    one = subprocess.run([sys.executable, "-c", WORKER, str(n)], capture_output=True, text=True, env=env)
    if one.returncode != 0:
        print(f"one-process run failed:\n{one.stderr[-2000:]}")
        return
    single = json.loads(one.stdout.strip().splitlines()[-1])
    socks = [socket.socket() for _ in range(2)]
    for sock in socks:
        sock.bind(("localhost", 0))
    cluster = [f"localhost:{sock.getsockname()[1]}" for sock in socks]
    for sock in socks:
        sock.close()
    procs = []
    for i in range(2):
        config = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": i}})
        procs.append(subprocess.Popen([sys.executable, "-c", WORKER, str(n)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True, env={**env, "TF_CONFIG": config}))
    outs = [p.communicate(timeout=3600) for p in procs]
    if any(p.returncode for p in procs):
        print("two-worker run failed:\n" + "\n".join(err[-1500:] for _, err in outs))
        return
    results = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    two = max(r["seconds"] for r in results)
    same = all(np.array_equal(r["indices"], single["indices"]) and np.allclose(r["scores"], single["scores"])
               for r in results)
    print(f"block4_relu top-16 over {n} images: one process {single['seconds']:.1f} s "
          f"({n / single['seconds']:.1f} images/s); two local workers (MultiWorkerMirroredStrategy) {two:.1f} s "
          f"({n / two:.1f} images/s): speed-up {single['seconds'] / two:.2f}x; merged top-16 equals the one-process "
          f"pass: {'yes' if same else 'NO'}")


def speed(n: int, repeats: int = 1, layers: tuple = BLOCKS) -> None:
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

    # Trace everything once, the last batch's smaller shape too, and compile each pass's XLA loops as a full pass
    # does (at its first batch: the cancelled pass keeps what its first batches compiled).
    small, full = pipeline(images[:2 * BATCH + n % BATCH]), pipeline(images)
    model.predict(small, verbose=0)
    for layer in layers:
        dataset.channel_examples(model, small, layer, k=16)
        cancel = threading.Event()
        dataset.channel_examples(model, full, layer, k=16, cancel=cancel,
                                 progress=lambda done, total, partial: done >= 2 and cancel.set())
    fns = {"predict": lambda: model.predict(full, verbose=0)}
    for layer in layers:
        fns[layer] = lambda layer=layer: dataset.channel_examples(model, full, layer, k=16)
    # The process's CPU time of each call too, beside the wall time: steadier on this VM, whose rounds sometimes
    # run on one core (the per-round wall ratios then jump).
    cpu = {name: [] for name in fns}

    def with_cpu(name, fn):
        def run():
            start = time.process_time()
            fn()
            cpu[name].append(time.process_time() - start)
        return run

    rounds = interleaved_times({name: with_cpu(name, fn) for name, fn in fns.items()}, warmup=0, repeats=repeats)
    cpu = {name: ts[-repeats:] for name, ts in cpu.items()}  # the timed rounds'
    times = {name: statistics.median(ts) for name, ts in rounds.items()}
    floor = n / times["predict"]
    print(f"model.predict (floor): {floor:8.1f} images/s (median of {repeats}; per round "
          f"{', '.join(f'{n / t:.0f}' for t in rounds['predict'])})")
    # This VM's speed drifts (the floor alone has measured 390 to 980 images/s on a quiet machine): the verdict
    # takes the median of the per-round ratios, each a pass against the floor timed beside it in the same round.
    for layer in layers:
        rate = n / times[layer]
        ratio = statistics.median(p / t for p, t in zip(rounds["predict"], rounds[layer]))
        target = 0.9 if layer == "block4_relu" else 0.8
        print(f"{layer:>12} top-16 + statistics: {rate:8.1f} images/s; per-round ratio to the floor, median "
              f"{ratio:.2f}x (rounds {', '.join(f'{p / t:.2f}' for p, t in zip(rounds['predict'], rounds[layer]))};"
              f" target >= {target}x: {'PASS' if ratio >= target else 'MISS'})")
        cpu_ratios = [p / t for p, t in zip(cpu["predict"], cpu[layer])]
        batches = -(-n // BATCH)
        print(f"{'':>12} CPU time: {1000 * statistics.median(cpu[layer]) / batches:.0f} ms a batch against "
              f"predict's {1000 * statistics.median(cpu['predict']) / batches:.0f}; per-round CPU ratio, median "
              f"{statistics.median(cpu_ratios):.2f}x (rounds {', '.join(f'{r:.2f}' for r in cpu_ratios)})")
        # Cores busy (CPU time over wall time): a pass's wall ratio is its CPU ratio times its share of the cores
        # predict keeps busy (on an idle 2-core machine predict's convolutions keep both busy, a pass's
        # single-threaded parts leave one idle for a while).
        busy = statistics.median(c / w for c, w in zip(cpu[layer], rounds[layer]))
        print(f"{'':>12} cores busy: {busy:.2f} against predict's "
              f"{statistics.median(c / w for c, w in zip(cpu['predict'], rounds['predict'])):.2f} (CPU / wall, median)")


def memory(sizes: list[int]) -> None:
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(root)}
    peaks, kind = {}, "high-water mark"
    for m in sizes:
        run = subprocess.run([sys.executable, "-c", MEMORY, str(m), str(min(sizes))], capture_output=True, text=True,
                             env=env)
        if run.returncode != 0:
            print(f"memory run at {m} images failed:\n{run.stderr[-2000:]}")
            return
        out = json.loads(run.stdout.strip().splitlines()[-1])
        if out["hwm_mib"] is None:  # the high-water mark could not be reset: the largest sample instead
            kind = "largest sample"
        peaks[m] = out["hwm_mib"] if out["hwm_mib"] is not None else out["sampled_mib"]
        print(f"block4_relu top-16 over {out['images']:6d} generated images: peak RSS during the pass "
              f"{peaks[m]:7.1f} MiB ({kind}; before it {out['before_mib']:.1f} MiB); RSS sampled at progress calls: "
              f"largest {out['sampled_mib']:.1f} MiB, over the first {min(sizes)} images "
              f"{out['sampled_first_mib']:.1f}")
    lo, hi = min(sizes), max(sizes)
    ratio = peaks[hi] / peaks[lo]
    print(f"peak RSS ({kind}) {hi} / {lo} images: {ratio:.3f} (target within 5%: "
          f"{'PASS' if abs(ratio - 1) <= 0.05 else 'MISS'})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--memory", type=int, nargs="*", default=[5000, 20000])
    parser.add_argument("--repeats", type=int, default=1, help="interleaved timed rounds (median)")
    parser.add_argument("--workers", type=int, default=4000, help="images for two workers against one; 0: skip")
    parser.add_argument("--layers", nargs="+", default=list(BLOCKS), choices=BLOCKS,
                        help="the blocks whose pass is timed (default: all four)")
    args = parser.parse_args()
    print(machine_note())
    if args.images:
        speed(args.images, args.repeats, tuple(args.layers))
    if args.memory:
        memory(args.memory)
    if args.workers:
        print(machine_note())
        workers(args.workers)
    print(machine_note())


if __name__ == "__main__":
    main()
