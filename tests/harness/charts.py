"""What a bqplot chart in the page really draws, for browser tests: ``geometry(page, selector)`` and colour checks.

``geometry(page, selector)`` -> ``{"lines": [points per path.line], "bars": [height per rect.bar],
"cells": [fill per heatmap cell], "ticks": {axis label ("" if none): [tick label, ...]}, "title": str}``
for the first bqplot figure matching ``selector`` (its own element or one inside it).
``off_scale(fills, "viridis")`` -> the fills ("rgb(r, g, b)") that are not colours of the scheme (nor the null grey
#eeeeee), using the anchors of js/colormaps.js.
"""
from __future__ import annotations

import re

import numpy as np

from . import env

GEOMETRY_JS = r"""
(sel) => {
  const root = document.querySelector(sel);
  if (!root) return null;
  const fig = root.classList.contains('bqplot') ? root : root.querySelector('.bqplot');
  if (!fig) return null;
  const q = (s) => [...fig.querySelectorAll(s)];
  const points = (d) => (d.match(/[ML]/g) || []).length;
  return {
    lines: q('path.line').map((p) => points(p.getAttribute('d') || '')),
    bars: q('rect.bar').map((r) => Number(r.getAttribute('height'))),
    cells: q('.heatmapcell').map((c) => c.style.fill || c.getAttribute('fill') || ''),
    ticks: Object.fromEntries(q('g.axis').filter((a) => a.querySelector('.tick')).map((a) => [
      a.querySelector('text.axislabel')?.textContent || '',
      [...a.querySelectorAll('.tick text')].map((t) => t.textContent)])),
    title: fig.querySelector('.mainheading')?.textContent || '',
  };
}
"""


def geometry(page, selector: str) -> dict | None:
    return page.evaluate(GEOMETRY_JS, selector)


def scheme(name: str) -> np.ndarray:
    """(256, 3) float RGB of a colour scheme, interpolated from the anchors in js/colormaps.js (within 2/255 of
    matplotlib's tables; bqplot's d3 schemes agree to a few units)."""
    text = (env.REPO / "js" / "colormaps.js").read_text()
    block = re.search(name + r':\s*((?:"[0-9a-f ]+"\s*\+?\s*)+)', text).group(1)
    anchors = np.array([[int(h[i:i + 2], 16) for i in (0, 2, 4)] for h in re.findall(r"[0-9a-f]{6}", block)], float)
    t = np.linspace(0, len(anchors) - 1, 256)
    return np.stack([np.interp(t, np.arange(len(anchors)), anchors[:, c]) for c in range(3)], axis=1)


def off_scale(fills, name: str = "viridis", tolerance: float = 8.0) -> list[str]:
    """The fills farther than ``tolerance`` (0..255 units) from every colour of the scheme; the null grey allowed."""
    table, off = scheme(name), []
    for fill in fills:
        rgb = np.array([float(v) for v in re.findall(r"[\d.]+", fill)[:3]])
        if len(rgb) != 3 or (np.abs(rgb - 238).max() > 1 and np.abs(table - rgb).max(axis=1).min() > tolerance):
            off.append(fill)
    return off
