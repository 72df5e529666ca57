"""Checks for the options people pass, in one place: each returns the value in its normal form or raises an
:class:`OptionError` that names the option, repeats the value given and says what is allowed.

Core functions and widgets call these (widgets do no checking of their own), so an option is refused with the same
words wherever it is given, and when it is given, not later from deep inside TensorFlow.
"""

from __future__ import annotations

import math
import os
from numbers import Real

import numpy as np

from .errors import OptionError, did_you_mean

# Colour maps and normalizations the views draw (js/colormaps.js, js/activation_grid.js, js/heatmaps.js).
COLORMAPS = ("viridis", "magma", "gray", "coolwarm")
GRID_NORMALIZATIONS = ("channel", "layer")
# ModelProbe's keyword options, which every widget also takes (and hands to the probe it makes).
PROBE_OPTIONS = ("preprocess", "class_names", "input_range", "batch_size", "output")
WHOLE = "a whole number"  # what the widgets' messages call an integer option (positive_int's noun)
POSITIVE = "a positive number"  # and a number > 0 (positive_float's noun)
MEMORY_FRACTION = 0.5  # an option whose estimated working memory exceeds this share of the machine's RAM is refused


def positive_int(name: str, value, minimum: int = 1, noun: str = "an integer") -> int:
    """``value`` as an int >= ``minimum`` (bools, floats and strings refused), or an OptionError naming it.
    ``noun`` is what the message calls it (the widgets say "a whole number")."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise OptionError(f"{name} must be {noun} >= {minimum}; got {value!r} ({type(value).__name__}).")
    if value < minimum:
        raise OptionError(f"{name} must be {noun} >= {minimum}; got {value}.")
    return int(value)


def class_indices(name: str, value, n: int, classes: int, also: str = "") -> np.ndarray:
    """``value`` (an int for every image, or one int per image) as int32 (n,), each in [0, classes); bools,
    floats, nested lists and a wrong length are refused with an OptionError naming ``name``. ``also`` names what
    else the caller accepts, for the message (e.g. "None (the predicted class), ")."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        out = np.full(n, int(value), np.int64)
    else:
        try:
            out = np.asarray(value)
        except Exception:  # noqa: BLE001 - anything unconvertible is a bad value
            out = np.asarray([object()])
        if out.dtype == bool or not np.issubdtype(out.dtype, np.integer) or out.ndim != 1:
            raise OptionError(f"{name} must be {also}an int or a list of {n} ints (one per image), each a class in "
                              f"[0, {classes - 1}]; got {value!r}.")
        if len(out) != n:
            raise OptionError(f"{name} has {len(out)} entries but there are {n} images; give one class per image, "
                              "or a single int for all.")
    bad = (out < 0) | (out >= classes)
    if bad.any():
        plural = "es" * (classes != 1)
        raise OptionError(f"{name} {int(out[bad][0])} is out of range: this model has {classes} class{plural}, so "
                          f"{name} is a class index in [0, {classes - 1}].")
    return out.astype(np.int32)


def positive_float(name: str, value, allow_zero: bool = False, noun: str | None = None) -> float:
    """``value`` as a finite float > 0 (or >= 0), or an OptionError. ``noun`` is what the message calls it
    (default "a finite number > 0"; the widgets say "a positive number")."""
    out = _real(value)
    if not math.isfinite(out) or out < 0 or (out == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise OptionError(f"{name} must be {noun or f'a finite number {bound}'}; got {value!r}.")
    return out


def fraction(name: str, value) -> float:
    """``value`` as a float in [0, 1] (an opacity, a share), or an OptionError."""
    out = _real(value)
    if not 0.0 <= out <= 1.0:  # NaN fails too
        raise OptionError(f"{name} must be a number in [0, 1]; got {value!r}.")
    return out


def choice(name: str, value, choices):
    """``value`` unchanged if it is one of ``choices``, else an OptionError listing them (and the closest)."""
    try:
        ok = value in choices
    except TypeError:  # an unhashable value against a set
        ok = False
    if not ok:
        raise OptionError(f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}."
                          f"{did_you_mean(value, choices) if isinstance(value, str) else ''}")
    return value


def index(name: str, value, size: int | None = None, what: str = "") -> int:
    """``value`` as an int in [0, size) (or >= 0 when ``size`` is None). Negative values are refused: they do not
    count from the end, and do not stand for "none" or "the centre" either. ``what`` names what is indexed."""
    where = f" of {what}" if what else ""
    allowed = f"a whole number in [0, {size - 1}]" if size is not None else "a whole number >= 0"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise OptionError(f"{name} must be {allowed}{where}; got {value!r} ({type(value).__name__}).")
    if value < 0:
        raise OptionError(f"{name} {value} is out of range{where}: it must be {allowed}; got {value} (negative "
                          "indices are not counted from the end here).")
    if size is not None and value >= size:
        raise OptionError(f"{name} {value} is out of range{where}: it must be {allowed}; got {value}.")
    return int(value)


def indices(name: str, value, size: int | None = None, what: str = "") -> list[int]:
    """An index or a list of them (see ``index``) as a non-empty list of ints; floats like 3.0 are refused."""
    items = [value] if isinstance(value, (int, np.integer)) and not isinstance(value, bool) else value
    if isinstance(items, (str, bytes, dict)) or not hasattr(items, "__iter__"):
        raise OptionError(f"{name} must be an index or a list of indices (whole numbers >= 0); got {value!r} "
                          f"({type(value).__name__}).")
    items = list(items)
    if not items:
        raise OptionError(f"{name} must list at least one index; got {value!r}.")
    return [index(name, v, size, what) for v in items]


def numbers(name: str, value, positive: bool = False) -> list[float]:
    """A non-empty list of finite numbers (each > 0 when ``positive``), or an OptionError naming the option."""
    items = [value] if isinstance(value, (Real, np.number)) else value
    if isinstance(items, (str, bytes, dict)) or not hasattr(items, "__iter__"):
        items = [value]
    out = [_real(v) for v in items]
    bad = [v for v, f in zip(items, out) if not math.isfinite(f) or (positive and f <= 0)]
    if not out or bad:
        kind = "positive numbers" if positive else "finite numbers"
        raise OptionError(f"{name} must be a non-empty list of {kind}; got {value!r}"
                          f"{f' ({bad[0]!r} is not one)' if bad else ''}.")
    return out


def seed(value) -> int:
    """A random seed: a whole number >= 0."""
    return positive_int("seed", value, 0)


def input_range(value) -> tuple[float, float]:
    """``input_range`` as (lo, hi) floats, finite with lo < hi: the range of display-space pixel values."""
    try:
        lo, hi = (_real(v) for v in value)
    except (TypeError, ValueError):
        raise OptionError(f"input_range must be two numbers (lo, hi), the range of the images' pixel values, e.g. "
                          f"(0, 1) or (0, 255); got {value!r}.") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise OptionError(f"input_range must be two finite numbers lo < hi, e.g. (0, 1) or (0, 255); got "
                          f"{tuple(value)!r}.")
    return lo, hi


def preprocess(value):
    """None, or a callable mapping a float32 tensor (N, H, W, C) of display-space images to the model's input."""
    if value is not None and not callable(value):
        raise OptionError(f"preprocess must be None or a function of an image tensor (N, H, W, C), made of "
                          f"TensorFlow/Keras ops, e.g. lambda x: keras.applications.mobilenet_v2.preprocess_input("
                          f"x * 255); got {value!r} ({type(value).__name__}).")
    return value


def fits_in_memory(name: str, value, nbytes: float, what: str) -> None:
    """Refuse ``value`` of option ``name`` when ``what`` it makes would take ``nbytes`` (an estimate) beyond
    ``MEMORY_FRACTION`` of this machine's memory: an OptionError saying the estimate and the bound, instead of an
    out-of-memory error from TensorFlow after the allocation was tried."""
    limit = MEMORY_FRACTION * total_memory()
    if nbytes > limit:
        raise OptionError(f"{name}={value!r} is too large: {what} would need about {_gib(nbytes)} of memory, and "
                          f"this machine has {_gib(total_memory())} (at most {MEMORY_FRACTION:.0%} may be used). "
                          f"Choose a smaller {name}.")


def total_memory() -> float:
    """This machine's physical memory in bytes (16 GiB assumed where the system does not say)."""
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 16.0 * 2**30


def _gib(nbytes: float) -> str:
    return f"{nbytes / 2**30:.1f} GiB" if nbytes >= 2**28 else f"{nbytes / 2**20:.0f} MiB"


def _real(value) -> float:
    """A real number as float, NaN for anything else (strings, complex, None, bools)."""
    if isinstance(value, bool) or not isinstance(value, (Real, np.floating, np.integer)):
        return float("nan")
    return float(value)
