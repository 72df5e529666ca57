"""Attribution: which input pixels drive a prediction.

    from cnnwidget.core import attribution as attr
    maps = attr.saliency(probe, images, target=None)      # (N, H, W) float32

Every method takes ``(probe_or_model, images, target=None, **options)`` and returns one float32 value per input
pixel, (N, H, W). ``images`` are display-space (N, H, W, C) or (H, W, C); ``target`` an int, one int per image,
or None for each image's predicted class. The score explained is the target's pre-softmax logit (Score-CAM and
the metrics use the probability; see ``_common``). Bad options raise OptionError, bad layers LayerError, images
the model cannot take ImageError, all with what was expected and what was given. Long methods take
``progress(done, total)`` and a ``cancel`` threading.Event (raising ``Cancelled``).

gradients:     saliency, gradient_x_input, smoothgrad (variants "mean", "squared", "variance"),
               integrated_gradients (+ completeness_gap), guided_backprop
cam:           grad_cam, grad_cam_plus_plus, score_cam (any spatial layer, nested paths too; upsample=False: raw)
perturbation:  occlusion, rise, lime, kernel_shap (over ``superpixels``)
metrics:       deletion, insertion (AUCs (N,), pixels ranked as the map is shown: ``sign``), random_reference
               (a random map's AUCs, the reference), randomization (Spearman (N,) against a randomized copy),
               map_warning (why a map cannot be trusted: NaN, one value, negligible; "" if none)
"""

from ._common import Cancelled
from .cam import default_layer, grad_cam, grad_cam_plus_plus, score_cam
from .gradients import (baseline_images, completeness_gap, gradient_x_input, guided_backprop, integrated_gradients,
                        saliency, smoothgrad)
from .metrics import (NEGLIGIBLE, SIGNS, deletion, insertion, map_warning, random_reference, randomization,
                      randomized_model, shown, spearman)
from .perturbation import kernel_shap, lime, occlusion, rise
from .segmentation import superpixels
from .. import attention as _attention

METHODS = {
    "saliency": saliency, "gradient_x_input": gradient_x_input, "smoothgrad": smoothgrad,
    "integrated_gradients": integrated_gradients, "guided_backprop": guided_backprop, "grad_cam": grad_cam,
    "grad_cam_plus_plus": grad_cam_plus_plus, "score_cam": score_cam, "occlusion": occlusion, "rise": rise,
    "lime": lime, "kernel_shap": kernel_shap,
}
"""Every attribution method by name, in a sensible display order (fast gradient methods first). Each runs on every
model the probe takes."""

MODEL_METHODS = {"attention_rollout": (_attention.attention_rollout, _attention.has_rollout)}
"""Methods only some models can run, by name: (function, available(model_or_probe) -> bool). Attention rollout
needs self-attention over image patches; its map is the same for every class (``target`` is accepted and unused)."""


def method(name: str):
    """The function of a method of ``METHODS`` or ``MODEL_METHODS`` by name (KeyError for an unknown name)."""
    return METHODS[name] if name in METHODS else MODEL_METHODS[name][0]


def methods_for(model_or_probe) -> list[str]:
    """The names of every method that can run on this model: ``METHODS``, then the ``MODEL_METHODS`` it has."""
    return [*METHODS, *(name for name, (_, available) in MODEL_METHODS.items() if available(model_or_probe))]


__all__ = ["Cancelled", "METHODS", "MODEL_METHODS", "SIGNS", "baseline_images", "completeness_gap", "default_layer",
           "deletion", "grad_cam", "grad_cam_plus_plus", "gradient_x_input", "guided_backprop", "insertion",
           "integrated_gradients", "kernel_shap", "lime", "map_warning", "method", "methods_for", "occlusion",
           "random_reference",
           "randomization", "randomized_model", "rise", "saliency", "score_cam", "shown", "smoothgrad", "spearman",
           "superpixels"]
