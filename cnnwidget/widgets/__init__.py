"""Widgets: traitlets state and wire encoding over cnnwidget.core; no TensorFlow math here."""

from ._export import load_npz
from .activation_atlas import ActivationAtlas
from .activation_grid import ActivationGrid
from .attention_map import AttentionMap
from .attribution_map import AttributionMap
from .channel_card import ChannelCard
from .dataset_examples import DatasetExamples
from .explorer import Explorer
from .feature_visualization import FeatureVisualization
from .filter_grid import FilterGrid
from .layer_similarity import LayerSimilarity
from .robustness_view import RobustnessView
from .sidebar import show_in_sidebar
from .training_monitor import TrainingMonitor
from .uncertainty_view import UncertaintyView

__all__ = ["ActivationAtlas", "ActivationGrid", "AttentionMap", "AttributionMap", "ChannelCard", "DatasetExamples", "Explorer", "FeatureVisualization", "FilterGrid", "LayerSimilarity", "load_npz", "RobustnessView", "show_in_sidebar", "TrainingMonitor",
           "UncertaintyView"]
