"""Chart axes a person can trust: ticks chosen here from the data, labelled exactly, kept clear of the axis label.

Every bqplot chart of every widget builds its axes with :func:`axis` and hands its figure to :func:`follow`:

    x, y = bqplot.LinearScale(), bqplot.LinearScale()
    fig = bqplot.Figure(marks=[lines], axes=[_axes.axis(x, "step", kind="integer"),
                                             _axes.axis(y, "loss", vertical=True)], ...)
    _axes.follow(fig)   # ticks now, and again whenever a mark's data change (from any thread)

Why not bqplot's own ticks: its guessed tick format throws ``invalid format: .undefinedg`` on an empty or flat domain
(a chart shown before its data: ``num_ticks`` then yields no ticks, and the guess divides by their spacing), and the
exception stops the figure's marks from redrawing for good. Its ticks also fall outside the data (an epoch axis
at 0.99, 1.7, 2.5) and its short formats misstate them (".1f" prints 0.25 as "0.2"). Here every axis has an explicit
format from the start, and :func:`ticks` picks values inside the data with a format that prints each exactly.

Kinds: ``"real"`` (any number), ``"integer"`` (channels, epochs, steps: whole-number ticks only), ``"count"`` (an
integer axis whose scale starts at 0: histogram counts), ``"percent"`` (a fraction printed as a percentage: 0.25 as
"25%"), ``"ordinal"`` (names; only the label placement is done).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import bqplot
import numpy as np

KINDS = ("real", "integer", "count", "percent", "ordinal")
# Tick steps are these times a power of ten (2.5 only where it stays a whole number on integer axes).
_MANTISSAS = (1.0, 2.0, 2.5, 5.0)
# Text metrics of bqplot's axis fonts in JupyterLab (tick labels 12px sans-serif, axis labels 14px), in pixels:
# on the wide side, so that a label placed with them never covers a tick label.
_CHAR = 7.0  # measured: 5.8 (digits) to 7.0 (lower case) px a character in headless chromium on Debian
_TICK_HEIGHT = 14.0
_LABEL_HEIGHT = 16.0
_TICK_GAP = 3.0  # d3 puts tick labels 3px from the axis line (bqplot's grid lines make the inner tick size <= 0)
_GAP = 6.0
_TITLE_CLEARANCE = 48  # top margin under a title: the top tick label sticks 7px above the plot area
_lock = threading.RLock()  # marks change on worker threads; one axis update at a time


@dataclass(frozen=True)
class Ticks:
    """Tick positions and the d3-format string that prints each of them exactly; ``labels`` are those prints."""

    values: tuple[float, ...]
    format: str
    labels: tuple[str, ...]


def ticks(lo, hi, *, integer: bool = False, count: int = 5) -> Ticks:
    """At most ``count`` evenly spaced ticks inside [lo, hi], at 1, 2, 2.5 or 5 times a power of ten (the smallest
    such step that gives at most ``count``; a 2.5 step below 10 only if a 5 step would give fewer than 3 ticks).

    ``integer``: whole numbers only (none if no whole number lies in [lo, hi]). A single-point domain gets one tick
    at its value; an empty or non-finite one gets none. The format prints every tick exactly: 0.25 as "0.25", never
    "0.2"; 1e-5 steps and 1e6 magnitudes in exponent form.
    """
    fallback = "d" if integer else ".6~g"
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return Ticks((), fallback, ())
    lo, hi = (float(lo), float(hi)) if lo <= hi else (float(hi), float(lo))
    if integer:
        lo, hi = math.ceil(lo - 1e-9), math.floor(hi + 1e-9)
        if lo > hi:
            return Ticks((), fallback, ())
    if lo == hi:
        return _exact((lo,), 1.0 if integer else None, integer)
    span = hi - lo
    exponent = math.floor(math.log10(span / max(count - 1, 1))) - 1
    while True:
        for mantissa in _MANTISSAS:
            step = mantissa * 10.0 ** exponent
            if integer and (step < 1 or step != round(step)):
                continue
            first, last = math.ceil(lo / step - 1e-9), math.floor(hi / step + 1e-9)
            if mantissa == 2.5 and exponent <= 0 and _count(lo, hi, 2 * step) >= 3:
                continue  # 2.5 costs a decimal (0.25 against 0.5): only when the 5-step would leave too few ticks
            if last - first + 1 <= count:
                values = tuple(_round(k * step, step) for k in range(first, last + 1))
                return _exact(values, step, integer)
        exponent += 1


def _count(lo: float, hi: float, step: float) -> int:
    return math.floor(hi / step + 1e-9) - math.ceil(lo / step - 1e-9) + 1


def _round(value: float, step: float) -> float:
    """k * step without float noise (3 * 0.1 is 0.30000000000000004)."""
    return float(round(value, max(0, -math.floor(math.log10(step)) + 2))) + 0.0  # + 0.0: no "-0"


def _exact(values: tuple[float, ...], step: float | None, integer: bool) -> Ticks:
    if integer:
        return Ticks(values, "d", tuple(str(int(v)) for v in values))
    biggest = max(abs(v) for v in values)
    if step is None:  # one tick at an arbitrary value: up to 6 significant digits
        fmt = ".6~g"
        return Ticks(values, fmt, tuple(_print(v, fmt) for v in values))
    mantissa = round(step / 10.0 ** math.floor(math.log10(step)), 6)
    step_digit = math.floor(math.log10(step)) - (1 if mantissa == 2.5 else 0)  # the last digit a tick needs
    if biggest >= 1e6:  # SI prefixes: 2.5M, 500k, 0
        fmt = f".{math.floor(math.log10(biggest)) - step_digit + 1}~s"
    elif step < 1e-4:
        significant = max(0, math.floor(math.log10(biggest)) - step_digit) if biggest else 0
        fmt = f".{significant}~e"
    else:
        fmt = f".{max(0, -step_digit)}f"
    return Ticks(values, fmt, tuple(_print(v, fmt) for v in values))


def _print(value: float, fmt: str) -> str:
    """How d3-format prints ``value`` with ``fmt`` (one of the formats made above), for widths and tests; d3 writes
    a negative sign as U+2212, this as "-"."""
    if fmt == "d":
        return str(int(round(value)))
    precision, kind = int(fmt[1:].rstrip("~efgs") or 0), fmt[-1]
    if kind == "f":
        text = f"{value:.{precision}f}"
        return text[1:] if text.startswith("-") and float(text) == 0 else text
    if kind == "s":
        if not value:
            return "0"
        power = min(max(math.floor(math.log10(abs(value)) / 3), -8), 8)
        text = f"{value / 10.0 ** (3 * power):.{precision}g}"
        return text + "yzafpnµm kMGTPEZY"[power + 8].strip()
    text = f"{value:.{precision}{kind}}"
    if "e" in text:
        mantissa, exp = text.split("e")
        if "." in mantissa:
            mantissa = mantissa.rstrip("0").rstrip(".")
        text = f"{mantissa}e{int(exp):+d}"
    return text


# -- axes ---------------------------------------------------------------------------------------------------------

def axis(scale, label: str = "", *, kind: str = "real", vertical: bool = False, side: str | None = None,
         rotate: int = 0, **options) -> bqplot.Axis:
    """A bqplot Axis with an explicit tick format (so bqplot never guesses one) and no ticks until :func:`follow`
    sees data. ``kind``: see the module docstring; a ``"count"`` axis's scale is pinned to start at 0. ``rotate``:
    tick label rotation in degrees (ordinal names). Other options go to ``bqplot.Axis`` (``color``, ...)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
    if kind == "count" and getattr(scale, "min", None) is None:
        scale.min = 0.0
        scale.allow_padding = False  # bars stand on the axis, not on a sliver below 0
    options.setdefault("tick_format", {"ordinal": None, "integer": "d", "count": "d", "percent": ".0%"}.get(kind,
                                                                                                          ".6~g"))
    if vertical:
        options.setdefault("orientation", "vertical")
    if side:
        options["side"] = side
    if rotate and not vertical and side not in ("left", "right", "top"):
        # bqplot rotates a tick label about its middle: half of each name would lie inside the plot (under the
        # marks, cut). Anchored at its end (or start), the whole name hangs below the axis, as _rotated() assumes.
        style = dict(options.pop("tick_style", None) or {})
        style.setdefault("text-anchor", "end" if rotate < 0 else "start")
        options["tick_style"] = style
    if kind != "ordinal":
        options.setdefault("num_ticks", 0)  # no ticks before data (bqplot's own are ten over [0, 1]: "0 0 0 0 0 1...")
    a = bqplot.Axis(scale=scale, label=label, tick_rotate=rotate, **options)
    a._cnnw_kind = kind  # read by follow(); a plain attribute, not synced
    return a


def color_axis(scale, label: str = "", **options) -> bqplot.ColorAxis:
    """A bqplot ColorAxis (a colour bar) with an explicit tick format; :func:`follow` gives it ticks from the colour
    data."""
    options.setdefault("tick_format", ".6~g")
    options.setdefault("num_ticks", 0)  # no ticks until follow() sees colour data
    a = bqplot.ColorAxis(scale=scale, label=label, **options)
    a._cnnw_kind = "real"
    return a


def follow(figure: bqplot.Figure) -> bqplot.Figure:
    """Give every axis of ``figure`` made by :func:`axis` ticks from the data of the marks on its scale (and from
    the scale's own ``min``/``max`` where set), now and whenever a mark's data change; widen the figure's margins
    so that axis labels clear the tick labels. Returns ``figure``."""
    def update(_change=None):
        refresh(figure)

    for mark in figure.marks:
        mark.observe(update, names=[n for n in ("x", "y", "color", "row", "column") if mark.has_trait(n)])
    for a in figure.axes:
        a.scale.observe(update, names=[n for n in ("min", "max") if a.scale.has_trait(n)])
    update()
    return figure


def refresh(figure: bqplot.Figure) -> None:
    """Recompute the ticks and label placement of ``figure``'s axes from its marks' current data."""
    with _lock:
        margin = dict(figure.fig_margin)
        for a in figure.axes:
            kind = getattr(a, "_cnnw_kind", None)
            if kind is None:
                continue
            side = a.side or ("left" if a.orientation == "vertical" else "bottom")
            if kind == "ordinal":
                names = [str(v) for v in _ordinal_domain(figure, a.scale)]
                width = max((len(n) for n in names), default=0) * _CHAR
                extent = _rotated(width, a.tick_rotate, side)
                if side in ("bottom", "top") and a.tick_rotate:
                    # an end-anchored rotated name reaches sideways beyond its tick (the first/last column's)
                    edge = "left" if a.tick_rotate < 0 else "right"
                    reach = math.ceil(width * math.cos(math.radians(abs(a.tick_rotate))))
                    if margin.get(edge, 0) < reach:
                        margin[edge] = reach
            else:
                lo, hi = _data_range(figure, a.scale, zero=kind == "count")
                t = ticks(lo, hi, integer=kind in ("integer", "count")) if kind != "percent" else _percent(lo, hi)
                values = np.asarray(t.values, np.float64)
                current = np.asarray(a.tick_values if a.tick_values is not None else [], np.float64)
                # bqplot draws its own ten ticks when tick_values is empty, unless num_ticks < 2 (then none): over
                # an empty domain ([0, 1]) printed "d" they read "0 0 0 0 0 1 1 1 1 1".
                num = None if len(values) else 0
                if a.tick_format != t.format or current.shape != values.shape or not np.array_equal(current, values) \
                        or a.num_ticks != num:
                    with a.hold_sync():
                        a.tick_format, a.tick_values, a.num_ticks = t.format, values, num
                width = max((len(s) for s in t.labels), default=1) * _CHAR
                extent = width if side in ("left", "right") else _TICK_HEIGHT
                if side in ("bottom", "top") and t.labels and not isinstance(a, bqplot.ColorAxis):
                    # a horizontal tick label is centred on its tick: the first and last stick out half their width
                    # beyond the plot area where they sit at its edges
                    for edge, label in (("left", t.labels[0]), ("right", t.labels[-1])):
                        half = math.ceil(len(label) * _CHAR / 2 + 2)
                        if margin.get(edge, 0) < half:
                            margin[edge] = half
            if isinstance(a, bqplot.ColorAxis):
                continue
            # Tick labels reach _TICK_GAP + extent from the axis line; the label's near edge goes _GAP beyond them.
            # A vertical label's baseline is its near edge plus its descent (left) or its ascent less bqplot's
            # 1ex shift (right): 4px covers both. A horizontal label's baseline is its near edge plus its ascent.
            near = _TICK_GAP + extent + _GAP
            offset = math.ceil(near + (4 if side in ("left", "right") else _LABEL_HEIGHT - 4))
            if a.label and a.label_offset != f"{offset}px":
                a.label_offset = f"{offset}px"
            need = offset + (_LABEL_HEIGHT + 4 if side in ("left", "right") else 6) if a.label else math.ceil(near)
            if margin.get(side, 0) < need:
                margin[side] = need
        if figure.title and any(a.orientation == "vertical" for a in figure.axes) and \
                margin.get("top", 0) < _TITLE_CLEARANCE:
            margin["top"] = _TITLE_CLEARANCE
        if margin != figure.fig_margin:
            figure.fig_margin = margin


def _percent(lo, hi) -> Ticks:
    """Ticks of a fraction axis, chosen and printed as percentages (d3's "%" multiplies by 100)."""
    t = ticks(None if lo is None else lo * 100, None if hi is None else hi * 100)
    decimals = int(t.format[1:-1]) if t.format.endswith("f") else 0
    fmt = f".{decimals}%"
    return Ticks(tuple(round(v / 100, decimals + 2) for v in t.values), fmt,
                 tuple(f"{v:.{decimals}f}%" for v in t.values))


def _rotated(width: float, degrees: int, side: str) -> float:
    """How far a tick label of ``width`` px reaches away from its axis when rotated by ``degrees``."""
    angle = math.radians(abs(degrees or 0))
    if side in ("left", "right"):
        return width * math.cos(angle) + _TICK_HEIGHT * math.sin(angle)
    return width * math.sin(angle) + _TICK_HEIGHT * math.cos(angle)


def _scale_data(figure, scale):
    """The arrays of every mark of ``figure`` plotted on ``scale`` (Bars also their base)."""
    for mark in figure.marks:
        for dim, s in mark.scales.items():
            if s is scale and mark.has_trait(dim):
                yield getattr(mark, dim)
                if isinstance(mark, bqplot.Bars) and dim == "y":
                    yield np.asarray([mark.base], np.float64)


def _data_range(figure, scale, zero: bool = False) -> tuple[float | None, float | None]:
    """(lo, hi) of the finite data on ``scale``, bounded by the scale's ``min``/``max`` where set; 0 included for a
    count axis; (None, None) if there is no finite value."""
    lo = hi = None
    for data in _scale_data(figure, scale):
        try:
            values = np.asarray(data, np.float64).ravel()
        except (TypeError, ValueError):
            continue
        values = values[np.isfinite(values)]
        if values.size:
            lo = values.min() if lo is None else min(lo, values.min())
            hi = values.max() if hi is None else max(hi, values.max())
    smin, smax = getattr(scale, "min", None), getattr(scale, "max", None)
    if smin is not None and smax is not None:
        return float(smin), float(smax)
    if lo is None:
        return None, None
    if zero:
        lo, hi = min(lo, 0.0), max(hi, 0.0)
    if smin is not None:
        lo = float(smin)
    if smax is not None:
        hi = float(smax)
    return float(lo), float(hi)


def _ordinal_domain(figure, scale) -> list:
    names: list = []
    for data in _scale_data(figure, scale):
        for v in np.asarray(data).ravel().tolist():
            if v not in names:
                names.append(v)
    return names
