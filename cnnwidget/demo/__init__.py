"""Demo data set and models: procedurally drawn shapes, a small CNN trained on them (the default demo model) and a
hybrid conv + transformer model for attention (``load_hybrid_model``). Nothing is downloaded."""

from .hybrid import HYBRID_PATH, load_hybrid_model
from .model import MODEL_PATH, load_model
from .shapes import CLASS_NAMES, ShapesData, shapes

__all__ = ["shapes", "ShapesData", "CLASS_NAMES", "load_model", "MODEL_PATH", "load_hybrid_model", "HYBRID_PATH"]
