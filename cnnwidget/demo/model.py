"""The shipped demo CNN, trained by `python -m cnnwidget.demo.train`."""

from pathlib import Path

# Beside this module, so it resolves the same in a source tree, an editable install and an installed wheel.
MODEL_PATH = Path(__file__).parent / "shapes_cnn.keras"


def load_model():
    """Load the demo CNN from MODEL_PATH, offline, compiled so that evaluate and fit work.

    Input (N, 64, 64, 3) float32 in [0, 1]; output (N, 10) softmax probabilities over CLASS_NAMES.
    Compiled with Adam, sparse categorical cross-entropy and accuracy: labels are integer class indices.
    Each call returns a new, independent model.
    """
    import keras  # here, so that `from cnnwidget.demo import shapes` needs numpy only

    from .train import compile_model

    return compile_model(keras.saving.load_model(MODEL_PATH, safe_mode=True, compile=False))
