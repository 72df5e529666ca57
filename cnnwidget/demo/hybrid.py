"""The shipped demo hybrid model (a conv stem, 8x8 patches, two transformer blocks with MultiHeadAttention, a
classifier), trained by `python -m cnnwidget.demo.train_hybrid`. The conv model (``load_model``) stays the default
demo model; this one is for attention (``cnnwidget.core.attention``, ``cw.AttentionMap``)."""

from pathlib import Path

HYBRID_PATH = Path(__file__).parent / "shapes_hybrid.keras"


def load_hybrid_model():
    """Load the demo hybrid model from HYBRID_PATH, offline, in safe mode, compiled so evaluate and fit work.

    Input (N, 64, 64, 3) float32 in [0, 1]; output (N, 10) softmax probabilities over CLASS_NAMES. Its attention
    layers are "block1_attention" and "block2_attention" (4 heads each, self-attention over 64 tokens: an 8x8 grid
    of 8x8-pixel patches, row-major, no class token). Each call returns a new, independent model.
    """
    import keras  # here, so that `from cnnwidget.demo import shapes` needs numpy only

    from .train import compile_model

    return compile_model(keras.saving.load_model(HYBRID_PATH, safe_mode=True, compile=False))
