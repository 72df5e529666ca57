"""Attention maps and rollout against one plain compiled forward pass.

    .venv/bin/python benchmarks/attention.py [--only demo|vit] [--repeats 7]

Two models, 8 images each:

- demo: ``cnnwidget.demo.load_hybrid_model()`` (64x64, 8x8 tokens, 2 blocks of 4 heads; FALLBACK: the same
  architecture untrained when the file is missing; timings do not depend on the weights);
- vit: a ViT-style model at 224x224, patch 16 (196 tokens + a class token), 6 blocks of 6 heads, width 384, random
  init, stock Keras layers only.

Timed, interleaved (a, b, c, a, b, c, ...), median of ``--repeats`` after two warm-ups, images to numpy included:

- forward: ``tf.function(model(x, training=False))`` with a fixed input signature, fetched to numpy (the floor);
- maps: ``attention.attention_maps(probe, x)``: every site's scores, one compiled pass, fetched (target <= 1.1x);
- rollout: ``attention.attention_rollout(probe, x)``, maps included in its pass (target <= 1.2x).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from _timing import interleaved_medians, machine_note, verdict  # noqa: E402

from cnnwidget import demo  # noqa: E402
from cnnwidget.core import ModelProbe  # noqa: E402
from cnnwidget.core import attention as att  # noqa: E402

N_IMAGES = 8


def vit(size=224, patch=16, dim=384, blocks=6, heads=6, mlp=1536, classes=1000):
    """A ViT-S-like model from stock layers: patch embedding, a class token made from the mean patch (Dense), pre-norm
    blocks with MultiHeadAttention, the class token's output (Cropping1D) to a softmax layer."""
    keras.utils.set_random_seed(0)
    x = inputs = keras.Input((size, size, 3), name="image")
    x = keras.layers.Conv2D(dim, patch, strides=patch, name="patch_embed")(x)
    n = (size // patch) ** 2
    t = keras.layers.Reshape((n, dim), name="tokens")(x)
    cls = keras.layers.Reshape((1, dim), name="cls")(keras.layers.Dense(dim, name="cls_dense")(
        keras.layers.GlobalAveragePooling1D(name="cls_pool")(t)))
    t = keras.layers.Concatenate(axis=1, name="with_cls")([cls, t])
    for i in range(blocks):
        h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(t)
        h = keras.layers.MultiHeadAttention(heads, dim // heads, name=f"block{i}_attention")(h, h)
        t = keras.layers.Add(name=f"block{i}_add1")([t, h])
        h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(t)
        h = keras.layers.Dense(mlp, activation="gelu", name=f"block{i}_mlp1")(h)
        h = keras.layers.Dense(dim, name=f"block{i}_mlp2")(h)
        t = keras.layers.Add(name=f"block{i}_add2")([t, h])
    t = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(t)
    t = keras.layers.Flatten(name="cls_out")(keras.layers.Cropping1D((0, n), name="cls_take")(t))
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(t)
    return keras.Model(inputs, outputs, name="vit_s_like")


def demo_model():
    if demo.HYBRID_PATH.is_file():
        return demo.load_hybrid_model(), ""
    from cnnwidget.demo.train_hybrid import build_model

    return build_model(), " FALLBACK (untrained: no shapes_hybrid.keras)"


def measure(name, model, repeats):
    size = model.input_shape[1]
    x = np.random.default_rng(0).uniform(0, 1, (N_IMAGES, size, size, 3)).astype(np.float32)
    spec = tf.TensorSpec((None, size, size, 3), tf.float32)
    plain = tf.function(lambda images: model(images, training=False), input_signature=[spec])
    probe = ModelProbe(model)
    sites = probe.attention_layers
    fns = {
        "forward": lambda: plain(tf.constant(x)).numpy(),
        "maps": lambda: att.attention_maps(probe, x),
        "rollout": lambda: att.attention_rollout(probe, x),
    }
    times = interleaved_medians(fns, repeats=repeats)
    floor = times["forward"]
    print(f"\n{name}: {len(sites)} attention sites, {sites[0].shape[0]} heads x {sites[0].shape[1]} tokens, "
          f"{N_IMAGES} images; {machine_note()}")
    print(f"  {'pass':<10}{'seconds':>10}{'ratio':>8}")
    for key, seconds in times.items():
        print(f"  {key:<10}{seconds:>10.4f}{seconds / floor:>8.2f}")
    print(f"  {verdict(times['maps'] / floor, 1.1)} {name} maps {times['maps'] / floor:.2f}x (target <= 1.1x)")
    print(f"  {verdict(times['rollout'] / floor, 1.2)} {name} rollout {times['rollout'] / floor:.2f}x "
          "(target <= 1.2x)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("demo", "vit"))
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"attention benchmark; {machine_note()}")
    if args.only in (None, "demo"):
        model, note = demo_model()
        measure("demo hybrid" + note, model, args.repeats)
    if args.only in (None, "vit"):
        measure("ViT-style 224/16, 6 blocks x 6 heads", vit(), args.repeats)
    print(f"\ndone; {machine_note()}")


if __name__ == "__main__":
    main()
