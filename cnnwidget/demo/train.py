"""Train the demo CNN on the shapes data set and save it as shapes_cnn.keras beside this file.

    python -m cnnwidget.demo.train

Offline and seeded (fixed data seeds, keras.utils.set_random_seed); about 7 minutes on 2 CPU cores. A rerun gives
the same data but, through floating-point ordering in TensorFlow's kernels, not necessarily bit-identical weights.
Seeds TRAIN_SEED and HELD_OUT_SEED are used here; tests that need images the model has never seen use others.
"""

import time

import keras

from .model import MODEL_PATH
from .shapes import CLASS_NAMES, shapes

TRAIN_SEED, HELD_OUT_SEED = 0, 1
N_TRAIN, N_HELD_OUT = 20_000, 2_000
EPOCHS, BATCH_SIZE = 12, 64
FILTERS = (16, 32, 64, 128)
# Blocks 1-2 halve the resolution; blocks 3-4 keep 16x16 and widen their view with dilation instead. A 16x16 last
# spatial layer (4 px per cell) is what lets class activation maps land on the shape rather than beside it: with
# four pooled blocks the last maps were 8x8 and Grad-CAM's maximum fell outside half the shapes.
POOLED_BLOCKS, DILATION = 2, 2


def build_model(num_classes=len(CLASS_NAMES)):
    """Input (64, 64, 3) in [0, 1] -> (num_classes,) softmax probabilities.

    Four blocks of 3x3 conv, batch norm and ReLU; blocks 1-2 end in 2x2 max pooling (64 -> 16 px), blocks 3-4 are
    dilated (receptive field 42 px, the largest shape is 40 px). Then global average pooling, dropout and a linear
    softmax layer, so that class evidence is a weighted sum of the last maps (the architecture CAM was defined on)
    and no hidden dense layer can die. Every layer is named, and the ReLUs are layers of their own so activation
    and dead-unit tools find them.
    """
    x = inputs = keras.Input((64, 64, 3), name="image")
    for i, filters in enumerate(FILTERS, start=1):
        pooled = i <= POOLED_BLOCKS
        # No bias: the batch norm right after has its own shift.
        x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False, dilation_rate=1 if pooled else DILATION,
                                name=f"block{i}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{i}_bn")(x)
        x = keras.layers.Activation("relu", name=f"block{i}_relu")(x)
        if pooled:
            x = keras.layers.MaxPooling2D(2, name=f"block{i}_pool")(x)
        else:
            x = keras.layers.Dropout(0.1, name=f"block{i}_dropout")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    x = keras.layers.Dropout(0.2, name="gap_dropout")(x)
    outputs = keras.layers.Dense(num_classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name="shapes_cnn")


def compile_model(model, learning_rate=1e-3):
    """Compile for integer labels with Adam, cross-entropy and accuracy; returns the model."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def main(path=MODEL_PATH):
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    train = shapes(N_TRAIN, seed=TRAIN_SEED)
    held_out = shapes(N_HELD_OUT, seed=HELD_OUT_SEED)
    print(f"data: {N_TRAIN} + {N_HELD_OUT} images in {time.perf_counter() - start:.1f} s")

    model = build_model()
    steps = EPOCHS * -(-N_TRAIN // BATCH_SIZE)
    compile_model(model, keras.optimizers.schedules.CosineDecay(2e-3, steps))
    model.summary()
    start = time.perf_counter()
    model.fit(train.images, train.labels, batch_size=BATCH_SIZE, epochs=EPOCHS,
              validation_data=(held_out.images, held_out.labels), verbose=2)
    print(f"training: {time.perf_counter() - start:.0f} s")

    # Ship the weights without the optimizer state: a third of the file, and nothing a user would resume from.
    shipped = build_model()
    shipped.set_weights(model.get_weights())
    shipped.save(path)
    _, accuracy = compile_model(keras.saving.load_model(path, safe_mode=True, compile=False)).evaluate(
        held_out.images, held_out.labels, verbose=0)
    print(f"saved {path} ({path.stat().st_size / 1e6:.2f} MB, {shipped.count_params()} parameters)")
    print(f"held-out accuracy (seed {HELD_OUT_SEED}, {N_HELD_OUT} images): {accuracy:.4f}")


if __name__ == "__main__":
    import sys
    from pathlib import Path

    main(Path(sys.argv[1]) if len(sys.argv) > 1 else MODEL_PATH)
