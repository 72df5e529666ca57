"""PNG exports read back in browser tests: ``save(lab, page, widget, path)`` asks the kernel's ``widget.save_png`` and
returns the file's bytes as base64; ``differ(page, a, b)`` decodes two such PNGs in the page and counts the pixels
that differ (by more than 24 in a channel)."""
from __future__ import annotations

import base64
import time
from pathlib import Path

_DIFF = """async ([a, b]) => {
  const load = async (b64) => { const img = new Image(); img.src = 'data:image/png;base64,' + b64; await img.decode();
    const c = document.createElement('canvas'); c.width = img.width; c.height = img.height;
    const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0); return ctx.getImageData(0, 0, c.width, c.height); };
  const [x, y] = [await load(a), await load(b)];
  if (x.width !== y.width || x.height !== y.height) return {sizes: [[x.width, x.height], [y.width, y.height]]};
  let differ = 0;
  for (let i = 0; i < x.data.length; i += 4) {
    if (Math.max(Math.abs(x.data[i] - y.data[i]), Math.abs(x.data[i + 1] - y.data[i + 1]),
                 Math.abs(x.data[i + 2] - y.data[i + 2])) > 24) differ++;
  }
  return {sizes: [[x.width, x.height]], differ, of: x.width * x.height};
}"""


def save(lab, page, widget: str, path: Path, timeout: float = 60) -> str:
    """``{widget}.save_png(path)`` run in the page's kernel, waited for; the PNG as base64."""
    lab.kernel_run(page, f"_png_future = {widget}.save_png({str(path)!r})")
    deadline = time.monotonic() + timeout
    while lab.kernel_run(page, "print(_png_future.done())") != "True":
        assert time.monotonic() < deadline, f"no PNG written for {widget}"
        time.sleep(0.1)
    assert lab.kernel_run(page, "print(_png_future.exception())") == "None"
    return base64.b64encode(Path(path).read_bytes()).decode()


def differ(page, a: str, b: str) -> dict:
    """{"sizes": [[w, h]] (or both sizes when they differ), "differ": pixels, "of": pixels} of two base64 PNGs."""
    return page.evaluate(_DIFF, [a, b])
