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

Narrow views (issue 13: JupyterLab's sidebar leaves a view ~250 px): a figure handed to ``follow(fig, fit=True)``
gets margins sized to the labels it shows (from its first margins up, not only ever growing), and its ordinal axes
made with ``fit_names=px`` show each name in at most ``px`` pixels (a longer one elided in the middle, "block3…relu",
through bqplot's ``tick_labels``: the marks keep the full names, so a tooltip shows them), and only every k-th name
where the names would overlap at the figure's smallest size (its ``min_width``, its ``height``). A vertical colour
bar's margin is sized to its tick labels and label there too.

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

# Advance widths (px) of the printable ASCII characters (32..126) at 12 px in chromium's sans-serif on Debian
# (Liberation Sans: Arial's metrics, as on Windows and macOS), measured with canvas measureText; any other character
# counts as the widest (12.2 px). Used by fit=True figures, which size margins to the text they show.
_ASCII_12 = (
    3.33, 3.33, 4.26, 6.67, 6.67, 10.67, 8.0, 2.29, 4.0, 4.0, 4.67, 7.01, 3.33, 4.0, 3.33, 3.33, 6.67, 6.67, 6.67,
    6.67, 6.67, 6.67, 6.67, 6.67, 6.67, 6.67, 3.33, 3.33, 7.01, 7.01, 7.01, 6.67, 12.18, 8.0, 8.0, 8.67, 8.67, 8.0,
    7.33, 9.33, 8.67, 3.33, 6.0, 8.0, 6.67, 10.0, 8.67, 9.33, 8.0, 9.33, 8.67, 8.0, 7.33, 8.67, 8.0, 11.33, 8.0, 8.0,
    7.33, 3.33, 3.33, 3.33, 5.63, 6.67, 4.0, 6.67, 6.67, 6.0, 6.67, 6.67, 3.33, 6.67, 6.67, 2.67, 2.67, 6.0, 2.67,
    10.0, 6.67, 6.67, 6.67, 6.67, 4.0, 6.0, 3.33, 6.67, 6.0, 8.67, 6.0, 6.0, 6.0, 4.01, 3.12, 4.01, 7.01)
_SLACK = 1.1  # DejaVu Sans, the other common Linux sans-serif, is up to ~10% wider
_ELLIPSIS = "\u2026"
_NAME_PITCH = 15.0  # px between the baselines of two names one above the other (12 px text)
# The narrowest width names are thinned for: a view in JupyterLab's 300 px right sidebar is ~250 px wide, 246 px for
# a chart between ipywidgets' margins. A figure may shrink below it (to its min_width), where names can touch: bqplot
# names only every floor(n / (num_ticks - 1))-th, so thinning for 220 px could leave 1 name of 3 where 3 fit 246.
NARROW_PX = 246.0


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


# -- text widths --------------------------------------------------------------------------------------------------

def text_width(text: str, size: float = 12.0) -> float:
    """The width in px of ``text`` in the charts' sans-serif at ``size`` px, with a margin for wider fonts."""
    return _SLACK * size / 12.0 * sum(_ASCII_12[ord(c) - 32] if 32 <= ord(c) < 127 else 12.2 for c in str(text))


def elide(text: str, max_px: float, size: float = 12.0, head: float = 0.5) -> str:
    """``text`` if it fits ``max_px`` at ``size``; else its start and end around "…" within ``max_px`` (``head``:
    the share of the kept characters taken from the start)."""
    text = str(text)
    if text_width(text, size) <= max_px:
        return text
    keep = len(text) - 1
    while keep > 1:
        # of the cuts that fit, the one keeping the most digits (block numbers tell layers apart), then the one
        # nearest the asked share of the start
        fits = []
        for a in range(1, keep):
            short = text[:a] + _ELLIPSIS + text[len(text) - (keep - a):]
            if text_width(short, size) <= max_px:
                fits.append((-sum(c.isdigit() for c in short), abs(a - keep * head), short))
        if fits:
            return min(fits)[2]
        keep -= 1
    return text[:1] + _ELLIPSIS


def short_names(names, max_px: float, size: float = 12.0) -> dict:
    """{name: elided name} for the names longer than ``max_px``; the elided names differ from each other and from
    the names kept whole where some cut of them does (the middle is cut first, then more of the start is kept,
    then more of the end)."""
    names = [str(n) for n in names]
    out, taken = {}, set(n for n in names if text_width(n, size) <= max_px)
    for n in names:
        if n in taken and n not in out:
            continue
        for head in (0.5, 0.65, 0.35, 0.8, 0.2):
            short = elide(n, max_px, size, head)
            if short not in taken:
                break
        out[n] = short
        taken.add(short)
    return out


def _shown(names: list, num_ticks) -> list:
    """The names bqplot writes on an ordinal axis with ``num_ticks``: all of them, or every
    floor(n / (num_ticks - 1))-th from the first (bqplot 0.13 Axis.get_ticks_from_array_or_length)."""
    if num_ticks is None or len(names) <= num_ticks:
        return list(names)
    if num_ticks < 2:
        return []
    return list(names[::len(names) // (num_ticks - 1)])


def _px(value) -> float | None:
    """A CSS length in px ("260px" -> 260.0), None for anything else."""
    text = str(value or "").strip()
    try:
        return float(text[:-2]) if text.endswith("px") else None
    except ValueError:
        return None


# -- axes ---------------------------------------------------------------------------------------------------------

def axis(scale, label: str = "", *, kind: str = "real", vertical: bool = False, side: str | None = None,
         rotate: int = 0, fit_names: float | None = None, **options) -> bqplot.Axis:
    """A bqplot Axis with an explicit tick format (so bqplot never guesses one) and no ticks until :func:`follow`
    sees data. ``kind``: see the module docstring; a ``"count"`` axis's scale is pinned to start at 0. ``rotate``:
    tick label rotation in degrees (ordinal names). ``fit_names`` (ordinal axes of a ``follow(fig, fit=True)``
    figure): names longer than this many px are elided, and only every k-th is written where they would overlap.
    Other options go to ``bqplot.Axis`` (``color``, ...)."""
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
    if fit_names is not None:
        if kind != "ordinal":
            raise ValueError("fit_names is for ordinal axes (names)")
        a._cnnw_fit_names = float(fit_names)
    return a


def color_axis(scale, label: str = "", **options) -> bqplot.ColorAxis:
    """A bqplot ColorAxis (a colour bar) with an explicit tick format; :func:`follow` gives it ticks from the colour
    data."""
    options.setdefault("tick_format", ".6~g")
    options.setdefault("num_ticks", 0)  # no ticks until follow() sees colour data
    a = bqplot.ColorAxis(scale=scale, label=label, **options)
    a._cnnw_kind = "real"
    return a


def follow(figure: bqplot.Figure, fit: bool = False) -> bqplot.Figure:
    """Give every axis of ``figure`` made by :func:`axis` ticks from the data of the marks on its scale (and from
    the scale's own ``min``/``max`` where set), now and whenever a mark's data change; widen the figure's margins
    so that axis labels clear the tick labels. ``fit``: for narrow views, margins sized to the text shown from the
    figure's first margins up (they shrink again when the text does), names elided and thinned (``axis``'s
    ``fit_names``), a vertical colour bar's margin sized to its text. Returns ``figure``."""
    if fit:
        figure._cnnw_fit = dict(figure.fig_margin)  # the margins to size up from; a plain attribute, not synced
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
        base = getattr(figure, "_cnnw_fit", None)
        margin = _margins(figure, dict(base) if base is not None else dict(figure.fig_margin))
        if base is not None and _thin(figure, margin):  # fewer names shown: margins for those
            margin = _margins(figure, dict(base))
        if margin != figure.fig_margin:
            figure.fig_margin = margin


def _margins(figure: bqplot.Figure, margin: dict) -> dict:
    """Set the axes' ticks and label offsets from the data; ``margin`` widened where their text needs it."""
    fit = getattr(figure, "_cnnw_fit", None) is not None
    for a in figure.axes:
        kind = getattr(a, "_cnnw_kind", None)
        if kind is None:
            continue
        side = a.side or ("left" if a.orientation == "vertical" else "bottom")
        if kind == "ordinal":
            names = [str(v) for v in _ordinal_domain(figure, a.scale)]
            limit = getattr(a, "_cnnw_fit_names", None)
            if limit is not None and fit:
                short = short_names(names, limit)
                labels = {n: s for n, s in short.items() if s != n}
                if (a.tick_labels or {}) != labels:
                    a.tick_labels = labels
                width = max((text_width(labels.get(n, n)) for n in _shown(names, a.num_ticks)), default=0)
            else:
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
            if fit and a.orientation == "vertical" and side == "right":
                # bqplot draws the bar 20 px wide ending at the margin's middle, its tick labels 9 px right of
                # it, and its label centred 10 px left of the middle (above the bar)
                tick = max((text_width(s) for s in t.labels), default=0)
                need = math.ceil(max(48, 2 * (11 + tick), 32 + text_width(a.label or "", 14)))
                if margin.get("right", 0) < need:
                    margin["right"] = need
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
    if fit and figure.title and any(a.orientation == "vertical" for a in figure.axes):
        # bqplot centres the title (18 px) over the plot area: one wider than the plot area at its narrowest reaches
        # over the left axis, whose top number sticks 7 px above the plot area; 60 px keeps the title above it
        narrowest = NARROW_PX - margin.get("left", 0) - margin.get("right", 0)
        if text_width(figure.title, 18) > narrowest and margin.get("top", 0) < _TITLE_CLEARANCE + 12:
            margin["top"] = _TITLE_CLEARANCE + 12
    return margin


def _thin(figure: bqplot.Figure, margin: dict) -> bool:
    """Show every k-th name of each ``fit_names`` axis where all of them would overlap in the figure's plot area at
    its narrowest (``NARROW_PX`` or its ``min_width`` if wider; its ``height``) less ``margin``; True if an axis
    changed."""
    changed = False
    layout = figure.layout
    for a in figure.axes:
        if getattr(a, "_cnnw_fit_names", None) is None or isinstance(a, bqplot.ColorAxis):
            continue
        names = [str(v) for v in _ordinal_domain(figure, a.scale)]
        vertical = a.orientation == "vertical"
        size = _px(layout.height) if vertical else max(_px(layout.min_width) or 0.0, NARROW_PX)
        if size is None or len(names) < 3:
            continue
        length = size - (margin.get("top", 0) + margin.get("bottom", 0) if vertical else
                         margin.get("left", 0) + margin.get("right", 0))
        if vertical or abs(a.tick_rotate or 0) >= 60:
            pitch = _NAME_PITCH
        elif a.tick_rotate:
            pitch = _NAME_PITCH / math.sin(math.radians(abs(a.tick_rotate)))
        else:
            pitch = max(text_width((a.tick_labels or {}).get(n, n)) for n in names) + 8
        every = max(1, math.ceil(len(names) * pitch / max(length, 1.0)))
        num = None if every == 1 else len(names) // every + 1
        if a.num_ticks != num:
            a.num_ticks = num
            changed = True
    return changed


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
