"""Computations on Keras models, with numpy results: no widgets here."""

from ._startup import import_tensorflow

import_tensorflow()  # before anything imports it: its start-up lines stay out of the notebook (see _startup)


from .errors import Cancelled, CnnWidgetError, ImageError, LayerError, ModelError, OptionError
from .probe import LayerInfo, ModelProbe, as_probe, probe_for

__all__ = ["Cancelled", "CnnWidgetError", "ImageError", "LayerError", "LayerInfo", "ModelError", "ModelProbe", "OptionError", "as_probe",
           "probe_for"]
