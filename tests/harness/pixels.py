"""What the page draws with, for pixel-exact browser checks: the colour-map tables of js/colormaps.js (read from the
module itself through node, never re-derived) and JavaScript's rounding."""
from __future__ import annotations

import functools
import json
import math
import subprocess

import numpy as np

from . import env


@functools.lru_cache(maxsize=None)
def colormap(name: str) -> np.ndarray:
    """js/colormaps.js's own table for ``name``: uint8 (256, 3). A wrong table is the node tests' business."""
    script = (f"import {{ colormap }} from {json.dumps((env.REPO / 'js' / 'colormaps.js').as_uri())};"
              f"console.log(JSON.stringify(Array.from(colormap({json.dumps(name)}))));")
    out = subprocess.run(["node", "--input-type=module", "-e", script], capture_output=True, text=True, check=True)
    table = np.array(json.loads(out.stdout), np.uint8).reshape(256, 3)
    table.flags.writeable = False  # shared by every caller through the cache
    return table


def js_round(x: float) -> int:
    """Math.round: halves go up (Python's round() goes to even)."""
    r = math.floor(x)
    return r + 1 if x - r >= 0.5 else r
