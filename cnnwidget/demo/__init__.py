"""Demo data set and model: procedurally drawn shapes, and a small CNN trained on them. Nothing is downloaded."""

from .model import MODEL_PATH, load_model
from .shapes import CLASS_NAMES, ShapesData, shapes

__all__ = ["shapes", "ShapesData", "CLASS_NAMES", "load_model", "MODEL_PATH"]
