"""What a bqplot chart in the page really draws, for browser tests: ``geometry(page, selector)`` and colour checks.

``geometry(page, selector)`` -> ``{"lines": [points per path.line], "bars": [height per rect.bar],
"cells": [fill per heatmap cell], "ticks": {axis label ("" if none): [tick label, ...]}, "title": str}``
for the first bqplot figure matching ``selector`` (its own element or one inside it).
``axis_problems(page, root)`` -> repeated, overlapping or cut tick labels on the charts under ``root``.
``off_scale(fills, "viridis")`` -> the fills ("rgb(r, g, b)") that are not colours of the scheme (nor the null grey
#eeeeee), using the anchors of js/colormaps.js.
``settled(page, root)`` -> waits until the charts under ``root`` stop changing (instead of sleeping for a redraw).
``scroll_into_view(page, root)`` -> scrolls each chart under ``root`` into view in turn, as a reader does.
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


TICKS_JS = r"""
(root) => {
  // For every bqplot figure under root, what a person could not read among its tick labels: an axis repeating a
  // label ("0 0 0 0 0 1 1 1 1 1" on an empty chart), two tick labels overlapping (the x and y "0.0" at the origin),
  // a tick label cut by the figure's svg or by an ancestor that clips (overflow other than visible).
  const problems = [];
  const box = (el) => el.getBoundingClientRect();
  const overlap = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1 && b.top < a.bottom - 1;
  const clippers = (el) => {
    const out = [];
    // ancestors up to the notebook cell that hide what sticks out (a scrolling pane only hides it until scrolled)
    for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
      const s = getComputedStyle(p);
      if ([s.overflowX, s.overflowY].some((v) => v === 'hidden' || v === 'clip')) out.push(p);
      if (p.classList.contains('jp-Cell')) break;
    }
    return out;
  };
  for (const fig of document.querySelectorAll(root + ' .bqplot')) {
    const svg = fig.querySelector('svg');
    if (!svg || !box(svg).width) continue;
    const name = (fig.querySelector('.mainheading')?.textContent || '') + ' ' + [...fig.classList].join('.');
    const shown = (t) => t.textContent && box(t).width && getComputedStyle(t).display !== 'none' &&
                         Number(getComputedStyle(t).opacity) > 0;
    const all = [];
    for (const axis of fig.querySelectorAll('g.axis')) {
      const label = axis.querySelector('text.axislabel')?.textContent || '(no label)';
      const texts = [...axis.querySelectorAll('.tick text')].filter(shown);
      const seen = texts.map((t) => t.textContent);
      if (new Set(seen).size !== seen.length) problems.push(`${name}: axis "${label}" repeats tick labels: ${seen.join(' ')}`);
      all.push(...texts);
    }
    for (let i = 0; i < all.length; i++) {
      for (let j = i + 1; j < all.length; j++) {
        if (overlap(box(all[i]), box(all[j]))) {
          problems.push(`${name}: tick labels "${all[i].textContent}" and "${all[j].textContent}" overlap`);
        }
      }
    }
    const edges = [svg, ...clippers(svg)];
    for (const t of all) {
      const b = box(t);
      for (const e of edges) {
        const o = box(e);
        if (b.left < o.left - 1 || b.right > o.right + 1 || b.top < o.top - 1 || b.bottom > o.bottom + 1) {
          problems.push(`${name}: tick "${t.textContent}" is cut by ${e === svg ? 'the figure' : e.className || e.tagName}`);
          break;
        }
      }
    }
  }
  return problems;
}
"""


def axis_problems(page, root: str = ".jp-Notebook") -> list[str]:
    """Tick-label problems on the bqplot charts under ``root`` (see ``TICKS_JS``): repeated labels on an axis, two
    tick labels overlapping, a tick label cut by the figure or a clipping ancestor. [] when every chart is clean.
    Complements ``lab.axis_problems`` (axis labels and titles over tick labels, axis labels cut off)."""
    return page.evaluate(TICKS_JS, root)


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


SETTLED_JS = r"""
async ([root, quiet, ms]) => {
  // Until every bqplot figure under root has drawn the same svg for `quiet` animation frames in a row (a redraw,
  // a relayout after new margins, a transition: all change the svg); false after `ms`.
  const sig = () => [...document.querySelectorAll(root + ' .bqplot svg')].map((s) => s.outerHTML).join('|');
  const frame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));
  const end = performance.now() + ms;
  let last = sig(), same = 0;
  while (same < quiet) {
    if (performance.now() > end) return false;
    await frame();
    const now = sig();
    same = now === last ? same + 1 : 0;
    last = now;
  }
  return true;
}
"""


def settled(page, root: str = ".jp-Notebook", quiet: int = 10, timeout: float = 10) -> bool:
    """Wait until the bqplot charts under ``root`` stop changing (the same svg for ``quiet`` animation frames in a
    row): where a test would otherwise sleep for "the redraw lands". False if they still change after ``timeout``
    seconds (the test's own assertions then say what is drawn). A figure scrolled into view is laid out again some
    frames later (a deep RobustnessView's names axis: 5 quiet frames were too few, 60 enough): give ``quiet=60``."""
    return page.evaluate(SETTLED_JS, [root, quiet, int(timeout * 1000)])


# bqplot lays a figure out again (the margins its new names were given) only while it is on screen
# (IntersectionObserver): a chart that got its data off screen is read after it is scrolled to, as a reader sees it.
SCROLL_JS = """async (root) => {
  const frame = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  for (const fig of document.querySelectorAll(root + ' .bqplot')) {
    if (fig.parentElement.closest('.bqplot')) continue;
    fig.scrollIntoView({block: 'center'});
    await frame();
    await new Promise((r) => setTimeout(r, 200));  // bqplot's debounced relayout
  }
}"""


def scroll_into_view(page, root: str = ".jp-Notebook") -> None:
    """Scroll each chart under ``root`` to the middle of the view, one after the other (see SCROLL_JS)."""
    page.evaluate(SCROLL_JS, root)
