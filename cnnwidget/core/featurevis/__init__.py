"""Feature visualization (Lucid's method on Keras 3): optimize images so that a unit of a model fires strongly.

    from cnnwidget.core import featurevis as fv
    objective = fv.channel("block3_relu", 12) - 1e-3 * fv.total_variation()
    images = fv.render(probe, objective, steps=256, param=fv.fft_image(decorrelate=True),
                       transforms=fv.standard_transforms(), seed=0)   # (B, size, size, C) in the display range

objectives.py: what to maximize and its algebra; params.py: how images are made from variables; transforms.py:
the random jitter that keeps results robust; render.py: the compiled optimization loop.
"""

from .objectives import (Activations, Objective, as_objective, batch, blur, channel, channels, class_logit,
                         class_logits, deepdream, direction, diversity, l1, neuron, total_variation)
from .params import IMAGENET_COLOR_CORRELATION, Parameterization, color_correlation, fft_image, pixel_image
from .render import NaNLossError, render, trace_count
from .transforms import Transform, jitter, pad, random_rotate, random_scale, standard_transforms

__all__ = [
    "Activations", "Objective", "as_objective", "batch", "blur", "channel", "channels", "class_logit",
    "class_logits", "deepdream", "direction", "diversity", "l1", "neuron", "total_variation",
    "IMAGENET_COLOR_CORRELATION", "Parameterization", "color_correlation", "fft_image", "pixel_image",
    "NaNLossError", "render", "trace_count",
    "Transform", "jitter", "pad", "random_rotate", "random_scale", "standard_transforms",
]
