"""Bytes on the wire per ActivationGrid update, against the raw uint8 size of the tiles shown.

    .venv/bin/python benchmarks/wire.py [--only demo|mobilenetv2]

Builds the ActivationGrid on the demo model (64x64) and on MobileNetV2 (weights=None, 224x224), with every widget
comm replaced by a recorder that serializes each message exactly as ipykernel does (signed JSON frames: topic,
delimiter, HMAC, header, parent header, metadata, content; then the binary buffers; see _widgets.py). For each case
it sets ``grid.layer`` to a new layer (from a fixed starting layer, at the given page size) and counts every message
that change sends, from every widget of the grid (the canvas view and the per-channel stats chart), divided by
k*h*w of the tiles shown (``tile_meta``). Target: <= 1.05.

Columns: raw = k*h*w; tiles, ranges = the two binary buffers of the stack; json = the JSON content frames of all
messages (tile_meta, the layer echo, chart updates); envelope = the rest of the JSON frames (topic, HMAC, header,
parent header, metadata: about 530 bytes per message whatever it carries); chart = all bytes of the bqplot stats
chart's messages (its JSON, envelopes and float arrays); msgs = messages sent.
The ratio columns: "stack" = (tiles + ranges + the tile_meta message's frames) / raw, "view" = everything the
canvas view sends / raw, "total" = everything / raw (the figure judged against the target).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

from _timing import RetracingWarnings, machine_note, verdict  # noqa: E402

RETRACING = RetracingWarnings.install()
from _widgets import import_activation_grid, record_comms  # noqa: E402

TARGET = 1.05

# (layer, page size, what it stands for)
DEMO_CASES = [
    ("block1_relu", 64, "early, large maps"),
    ("block2_relu", 64, "early-middle"),
    ("block3_relu", 64, "middle"),
    ("block4_relu", 64, "late, many channels"),
    ("gap", 64, "vector layer (one tile of all units)"),
]
MOBILENET_CASES = [
    ("Conv1_relu", 64, "early, large maps (downsampled)"),
    ("block_1_expand_relu", 64, "early, large maps (downsampled)"),
    ("block_6_expand_relu", 64, "middle"),
    ("block_13_expand_relu", 64, "late"),
    ("block_16_expand_relu", 64, "late, many channels"),
    ("block_13_expand_relu", 512, "late, page of 512"),
    ("block_16_expand_relu", 512, "late, page of 512"),
    ("out_relu", 512, "last conv, page of 512"),
]


def demo_model():
    try:
        from cnnwidget.demo import load_model

        return load_model(), "cnnwidget.demo.load_model()"
    except Exception as exc:  # noqa: BLE001 - the demo model file may not be trained yet
        from cnnwidget.demo.train import build_model

        return build_model(), f"FALLBACK demo architecture, untrained weights (load_model failed: {type(exc).__name__})"


def demo_images():
    try:
        from cnnwidget.demo import shapes

        return shapes(8, seed=1).images
    except Exception:  # noqa: BLE001
        return np.random.default_rng(1).random((8, 64, 64, 3), dtype=np.float32)


def measure(grid, log, cases, start_layer):
    view_id = grid.view.comm.comm_id
    rows = []
    for layer, page_size, what in cases:
        if grid.page_size != page_size:
            grid.page_size = page_size
        if grid.layer != grid.probe.layer(start_layer).path:
            grid.layer = start_layer
        log.clear()
        grid.layer = layer
        sent = list(log)
        meta = grid.view.tile_meta
        raw = meta["k"] * meta["h"] * meta["w"]
        tiles = sum(s.buffers.get("tiles", 0) for s in sent)
        ranges = sum(s.buffers.get("tile_ranges", 0) for s in sent)
        stack = sum(s.total for s in sent if s.comm_id == view_id and "tiles" in s.keys)
        view = sum(s.total for s in sent if s.comm_id == view_id)
        total = sum(s.total for s in sent)
        other_buffers = sorted({b for s in sent if s.comm_id == view_id for b in s.buffers} - {"tiles", "tile_ranges"})
        rows.append(dict(layer=layer, page=page_size, what=what,
                         shape=f"{meta['k']}x{meta['h']}x{meta['w']} of {meta['n_channels']} "
                               f"({meta['source_h']}x{meta['source_w']})",
                         raw=raw, tiles=tiles, ranges=ranges, json=sum(s.content for s in sent),
                         envelope=sum(s.frames - s.content for s in sent), chart=total - view, msgs=len(sent),
                         stack=stack / raw, view=view / raw, total=total / raw, extra=other_buffers))
    print(f"   {'layer':<22}{'page':>5}  {'tiles k x h x w of C (source)':<32}{'raw B':>9}{'tiles':>9}{'ranges':>8}"
          f"{'json':>7}{'envelope':>9}{'chart':>8}{'msgs':>5}{'stack':>7}{'view':>7}{'total':>8}")
    for r in rows:
        extra = f"  (also sent: {', '.join(r['extra'])})" if r["extra"] else ""
        print(f"   {r['layer']:<22}{r['page']:>5}  {r['shape']:<32}{r['raw']:>9,}{r['tiles']:>9,}{r['ranges']:>8,}"
              f"{r['json']:>7,}{r['envelope']:>9,}{r['chart']:>8,}{r['msgs']:>5}{r['stack']:>7.3f}{r['view']:>7.3f}"
              f"{r['total']:>8.3f}{extra}")
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=["demo", "mobilenetv2"])
    args = parser.parse_args()
    started = time.perf_counter()
    print(f"wire benchmark: Keras {keras.__version__}; {machine_note()}")
    log = record_comms()
    try:
        grid_class, note = import_activation_grid()
    except Exception as exc:  # noqa: BLE001
        print(f"ActivationGrid does not import ({type(exc).__name__}: {exc}); nothing to measure.")
        return
    print(note)

    results = {}
    if args.only in (None, "demo"):
        model, model_note = demo_model()
        print(f"\n== demo: {model_note}; 8 images 64x64; start layer block1_conv")
        grid = grid_class(model, demo_images(), layer="block1_conv")
        results["demo"] = measure(grid, log, DEMO_CASES, "block1_conv")
    if args.only in (None, "mobilenetv2"):
        model = keras.applications.MobileNetV2(weights=None)
        images = np.random.default_rng(0).random((8, 224, 224, 3), dtype=np.float32)
        print("\n== mobilenetv2: keras.applications.MobileNetV2(weights=None), 8 random images 224x224; "
              "start layer Conv1")
        grid = grid_class(model, images, layer="Conv1", preprocess=lambda x: x * 2 - 1)
        results["mobilenetv2"] = measure(grid, log, MOBILENET_CASES, "Conv1")

    print(f"\nTensorFlow 'triggered tf.function retracing' warnings during this run: {RETRACING.count} "
          "(kept off this output; a notebook shows them)")
    print(f"\nsummary ({time.perf_counter() - started:.0f} s; {machine_note()}): "
          f"bytes per layer change / raw tile bytes, target <= {TARGET}")
    for name, rows in results.items():
        for r in rows:
            print(f"  {verdict(r['total'], TARGET)}  {name} {r['layer']} page {r['page']} ({r['what']}): "
                  f"{r['total']:.3f} total ({r['view']:.3f} canvas view only, {r['stack']:.3f} tile stack only)")


if __name__ == "__main__":
    main()
