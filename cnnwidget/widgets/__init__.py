"""Widgets: traitlets state and wire encoding over cnnwidget.core; no TensorFlow math here."""

from .activation_grid import ActivationGrid
from .feature_visualization import FeatureVisualization
from .sidebar import show_in_sidebar

__all__ = ["ActivationGrid", "FeatureVisualization", "show_in_sidebar"]
