"""Widgets: traitlets state and wire encoding over cnnwidget.core; no TensorFlow math here."""

from .activation_grid import ActivationGrid
from .attention_map import AttentionMap
from .attribution_map import AttributionMap
from .feature_visualization import FeatureVisualization
from .filter_grid import FilterGrid
from .layer_similarity import LayerSimilarity
from .robustness_view import RobustnessView
from .sidebar import show_in_sidebar
from .training_monitor import TrainingMonitor
from .uncertainty_view import UncertaintyView

__all__ = ["ActivationGrid", "AttentionMap", "AttributionMap", "FeatureVisualization", "FilterGrid", "LayerSimilarity", "RobustnessView", "show_in_sidebar", "TrainingMonitor",
           "UncertaintyView"]
