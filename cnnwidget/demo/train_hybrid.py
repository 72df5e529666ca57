"""Train the demo hybrid (conv stem + transformer) model on the shapes data set; save shapes_hybrid.keras here.

    python -m cnnwidget.demo.train_hybrid              # every cycle (about an hour on 2 busy CPU cores)
    python -m cnnwidget.demo.train_hybrid --resume K   # skip the first K cycles, from the saved weights

Offline and seeded (data seeds TRAIN_SEED and HELD_OUT_SEED, keras.utils.set_random_seed). Every layer is a stock
Keras layer, so the file loads with ``safe_mode=True`` and no custom objects. Tests that need images the model has
never seen use other seeds.
"""

import time

import keras

from .hybrid import HYBRID_PATH
from .shapes import CLASS_NAMES, shapes
from .train import compile_model

TRAIN_SEED, HELD_OUT_SEED = 0, 1
N_TRAIN, N_HELD_OUT = 12_000, 2_000
BATCH_SIZE = 128
# (data, peak learning rate, epochs)
CYCLES = (("fixed", 3e-3, 10), ("fixed", 1e-3, 8), ("fresh", 5e-4, 10), ("fresh", 5e-4, 10))
FRESH_SEEDS = 100  # epoch k of cycle i (fresh data) trains on shapes(N_TRAIN, seed=FRESH_SEEDS + 100 * (i - 2) + k)
STOP_AT = 0.975  # a cycle stops after an epoch with this held-out accuracy (kept short on shared CPUs)
STEM = (16, 32)  # two 3x3 conv blocks with stride 2: 64 -> 16 px
PATCH, DIM, HEADS, KEY_DIM, MLP, BLOCKS = 2, 64, 4, 16, 128, 2  # 2x2 patches of the 16x16 stem map: 8x8 tokens


def build_model(num_classes=len(CLASS_NAMES)):
    """Input (64, 64, 3) in [0, 1] -> (num_classes,) softmax probabilities.

    A conv stem (two blocks of 3x3 conv with stride 2, batch norm, ReLU: 64 -> 16 px), a patch embedding
    (2x2 conv, stride 2: an 8x8 grid of 64 tokens, each one 8x8 image patch), a conditional position encoding
    (a 3x3 depthwise conv added to the tokens on their grid, Chu et al. 2021: stock layers only, no class token),
    BLOCKS pre-norm transformer blocks (MultiHeadAttention with HEADS heads, a GELU MLP, residual adds), a final
    layer norm, the mean over tokens, and a softmax layer.
    """
    x = inputs = keras.Input((64, 64, 3), name="image")
    for i, filters in enumerate(STEM, start=1):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"stem{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"stem{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"stem{i}_relu")(x)
    x = keras.layers.Conv2D(DIM, PATCH, strides=PATCH, name="patch_embed")(x)
    grid = x.shape[1]
    x = keras.layers.Add(name="position_add")([x, keras.layers.DepthwiseConv2D(3, padding="same",
                                                                                 name="position_conv")(x)])
    t = keras.layers.Reshape((grid * grid, DIM), name="tokens")(x)
    for i in range(1, BLOCKS + 1):
        h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(t)
        h = keras.layers.MultiHeadAttention(HEADS, KEY_DIM, name=f"block{i}_attention")(h, h)
        t = keras.layers.Add(name=f"block{i}_add1")([t, h])
        h = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(t)
        h = keras.layers.Dense(MLP, activation="gelu", name=f"block{i}_mlp1")(h)
        h = keras.layers.Dense(DIM, name=f"block{i}_mlp2")(h)
        t = keras.layers.Add(name=f"block{i}_add2")([t, h])
    t = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(t)
    t = keras.layers.GlobalAveragePooling1D(name="token_mean")(t)
    t = keras.layers.Dropout(0.1, name="dropout")(t)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(t)
    return keras.Model(inputs, outputs, name="shapes_hybrid")


def main(path=HYBRID_PATH, resume=0):
    """Three cosine cycles with warm restarts (Loshchilov and Hutter 2017), saving after each: CYCLES, each (data,
    peak rate, epochs); "fixed" data is N_TRAIN images of seed TRAIN_SEED, "fresh" data is N_TRAIN new images every
    epoch (see FRESH_SEEDS: the procedural data set is unlimited, so those cycles cannot overfit).
    A cycle stops early once the held-out accuracy reaches STOP_AT. ``resume``: skip the first ``resume`` cycles
    and start from the weights saved at ``path``."""
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    train = shapes(N_TRAIN, seed=TRAIN_SEED)
    held_out = shapes(N_HELD_OUT, seed=HELD_OUT_SEED)
    print(f"data: {N_TRAIN} + {N_HELD_OUT} images in {time.perf_counter() - start:.1f} s", flush=True)

    model = build_model()
    model.summary()
    if resume:
        model.set_weights(keras.saving.load_model(path, safe_mode=True, compile=False).get_weights())
    for i, (data, rate, epochs) in enumerate(CYCLES[resume:], start=resume):
        _fit(model, train if data == "fixed" else FRESH_SEEDS + 100 * (i - 2), held_out, rate, epochs)
        _save(model, path, held_out)
        if model.stop_training:
            break


def _fit(model, train, held_out, rate, epochs):
    """One cosine cycle on ``train`` (a ShapesData), or on fresh images every epoch from seed ``train`` (an int)."""
    steps_per_epoch = -(-N_TRAIN // BATCH_SIZE)
    compile_model(model, keras.optimizers.schedules.CosineDecay(rate, epochs * steps_per_epoch))
    start = time.perf_counter()

    def report(batch, logs):
        if batch % 20 == 0:
            print(f"  batch {batch}: loss {logs['loss']:.3f} accuracy {logs['accuracy']:.3f} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)

    for epoch in range(epochs):
        fresh = isinstance(train, int)
        data = shapes(N_TRAIN, seed=train + epoch) if fresh else train
        history = model.fit(data.images, data.labels, batch_size=BATCH_SIZE, epochs=1, verbose=0,
                            validation_data=(held_out.images, held_out.labels),
                            callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=report)])
        accuracy = history.history["val_accuracy"][-1]
        print(f"epoch {epoch + 1} ({'fresh' if fresh else 'fixed'} data, peak rate {rate}): held-out "
              f"accuracy {accuracy:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
        model.stop_training = accuracy >= STOP_AT
        if model.stop_training:
            break


def _save(model, path, held_out):
    """Ship the weights without the optimizer state."""
    shipped = build_model()
    shipped.set_weights(model.get_weights())
    shipped.save(path)
    _, accuracy = compile_model(keras.saving.load_model(path, safe_mode=True, compile=False)).evaluate(
        held_out.images, held_out.labels, verbose=0)
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB, {shipped.count_params()} parameters)")
    print(f"held-out accuracy (seed {HELD_OUT_SEED}, {N_HELD_OUT} images): {accuracy:.4f}", flush=True)


if __name__ == "__main__":
    import sys
    from pathlib import Path

    args = sys.argv[1:]
    resume = 0
    if "--resume" in args:
        i = args.index("--resume")
        resume = int(args[i + 1])
        del args[i:i + 2]
    main(Path(args[0]) if args else HYBRID_PATH, resume=resume)
