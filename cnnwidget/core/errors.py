"""The errors cnnwidget raises for bad input: each message says what was expected and what was given.

All are ``ValueError`` or ``TypeError`` subclasses, so callers that already catch those keep working, and widgets
can catch :class:`CnnWidgetError` alone to show the message in the view.
"""

from __future__ import annotations

import difflib
import numbers


class CnnWidgetError(Exception):
    """Base class: an input cnnwidget cannot use, with a message meant for the person who gave it."""


class ImageError(CnnWidgetError, ValueError):
    """Images of the wrong rank, size, channel count or dtype, empty, or containing NaN or infinity."""


class LayerError(CnnWidgetError, ValueError):
    """A layer that does not exist, or one of the wrong kind for what was asked."""


class OptionError(CnnWidgetError, ValueError):
    """An option out of its range: an image index past the batch, a channel past the layer, a page size of 0."""


class Cancelled(CnnWidgetError):
    """Raised by a long computation whose ``cancel`` event was set; nothing partial is returned."""


class ModelError(CnnWidgetError, TypeError):
    """An object that is not a Keras model, or a model cnnwidget cannot look inside."""


class CnnWidgetWarning(UserWarning):
    """Something given works but may mislead: images far outside ``input_range``, a CKA estimate from few images,
    the first of several model outputs chosen for you. The message says what was seen and what to do."""


def did_you_mean(value: object, known) -> str:
    """The hint " Did you mean 'a', 'b'?" for the known names closest to ``value``, or "" when none is close."""
    close = difflib.get_close_matches(str(value), [str(k) for k in known], n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""


def unknown_layer(name: object, known: list[str]) -> LayerError:
    """A :class:`LayerError` for a missing layer, suggesting the closest known names."""
    if isinstance(name, numbers.Number) and not isinstance(name, bool):
        listing = ", ".join(repr(k) for k in known[:12]) + (", ..." if len(known) > 12 else "")
        return LayerError(f"layers are given by name or path (a str); got the {type(name).__name__} {name!r}. For "
                          f"the layer at a position, use probe.layers[{name!r}].path. Layers are: {listing}")
    close = difflib.get_close_matches(str(name), known, n=3, cutoff=0.5)
    # Nested paths ("base/conv1") are hard to guess: also match on the last path part alone.
    close += [k for k in known if k.rsplit("/", 1)[-1] == str(name) and k not in close]
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listing = ", ".join(repr(k) for k in known[:12]) + (", ..." if len(known) > 12 else "")
    return LayerError(f"No layer named {str(name)!r} in this model.{hint} Layers are: {listing}")
