"""cnnwidget: see inside Keras convolutional networks, live in Jupyter.

    import cnnwidget as cw
    probe = cw.ModelProbe(model)
    cw.ActivationGrid(model, images)
"""

from .core import CnnWidgetError, ImageError, LayerError, LayerInfo, ModelError, ModelProbe, OptionError
from .core.similarity import freeze_until

__version__ = "0.1.0"

_WIDGETS = ("ActivationAtlas", "ActivationGrid", "AttentionMap", "AttributionMap", "ChannelCard", "DatasetExamples", "Explorer", "FeatureVisualization", "FilterGrid", "LayerSimilarity", "load_npz", "RobustnessView", "show_in_sidebar", "TrainingMonitor",
            "UncertaintyView")

__all__ = ["CnnWidgetError", "ImageError", "LayerError", "LayerInfo", "ModelError", "ModelProbe", "OptionError",
           "freeze_until", *_WIDGETS]


def __getattr__(name):
    # Widgets load on first use, so scripts that only compute (cnnwidget.core) never import ipywidgets.
    if name in _WIDGETS:
        from . import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'cnnwidget' has no attribute {name!r}")
