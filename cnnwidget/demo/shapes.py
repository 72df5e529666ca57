"""Procedurally generated "shapes" images: one filled shape on a textured background.

Pure numpy and vectorised over images, so tests and notebooks make them on the spot (10,000 in about 3 s on one
core) and nothing is downloaded. The class of an image depends on the outline of its shape only: colour, size, position,
rotation and background are drawn independently of the class.
"""

from dataclasses import dataclass

import numpy as np

CLASS_NAMES = (
    "circle", "square", "triangle", "diamond", "star", "cross", "ring", "crescent", "heart", "arrow",
)

# Diameter of the shape's circumscribed circle, as a fraction of the image side (16..40 px at size 64).
_MIN_EXTENT, _MAX_EXTENT = 0.25, 0.625
# Shapes and backgrounds are drawn from opposite halves of the brightness range, so every shape stands out.
_DARK_MAX, _LIGHT_MIN = 0.38, 0.62
_PIXEL_NOISE = 0.05  # half-width of the uniform per-pixel noise
# Images are made in chunks so the work arrays stay small whatever n is.
_CHUNK = 1024


# eq=False: a generated __eq__ would compare arrays with ==, which has no single truth value.
@dataclass(frozen=True, eq=False)
class ShapesData:
    """A batch of shapes images.

    images:      (n, size, size, 3) float32 in [0, 1], RGB.
    labels:      (n,) int64 in [0, len(class_names)), index into class_names.
    masks:       (n, size, size) bool, True exactly on the pixels painted with the shape's colour.
    class_names: tuple of str, the class of label i is class_names[i].
    """

    images: np.ndarray
    labels: np.ndarray
    masks: np.ndarray
    class_names: tuple[str, ...]


def shapes(n, seed=0, size=64):
    """Make `n` shapes images, deterministically from `seed`.

    Classes are balanced (counts differ by at most one) and shuffled. Each shape fits entirely inside the image;
    its circumscribed diameter is uniform in [0.25, 0.625] * size pixels (16..40 px at size 64), its rotation is
    uniform over the full turn. Returns a ShapesData (see there for shapes, dtypes and ranges).
    """
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(CLASS_NAMES)).astype(np.int64)
    images = np.empty((n, size, size, 3), np.float32)
    masks = np.empty((n, size, size), bool)
    for start in range(0, n, _CHUNK):
        stop = min(start + _CHUNK, n)
        masks[start:stop] = _draw_masks(rng, labels[start:stop], size)
        images[start:stop] = _paint(rng, masks[start:stop])
    return ShapesData(images, labels, masks, CLASS_NAMES)


def _draw_masks(rng, labels, size):
    """(m,) labels -> (m, size, size) bool masks of randomly placed, scaled and rotated shapes."""
    m = len(labels)
    radius = rng.uniform(_MIN_EXTENT, _MAX_EXTENT, m) * size / 2
    # Pixel centres lie at 0.5 .. size - 0.5; keeping the circumscribed circle inside keeps the whole shape in.
    cx = rng.uniform(radius, size - radius)
    cy = rng.uniform(radius, size - radius)
    angle = rng.uniform(0, 2 * np.pi, m)

    masks = np.empty((m, size, size), bool)
    for label, name in enumerate(CLASS_NAMES):
        sel = labels == label
        masks[sel] = _INSIDE[name](*_local_coords(cx[sel], cy[sel], radius[sel], angle[sel], size))
    return masks


def _local_coords(cx, cy, radius, angle, size):
    """Per-image centre (px), circumradius (px) and rotation (rad), each (k,) -> u, v, each (k, size, size) float32.

    (u, v) are the pixel centres in the shape's frame: unit circumradius, v upwards, rotated by -angle.
    """
    grid = np.arange(size, dtype=np.float32) + 0.5
    scale = (1 / radius).astype(np.float32)[:, None, None]
    dx = (grid[None, None, :] - cx.astype(np.float32)[:, None, None]) * scale
    dy = (cy.astype(np.float32)[:, None, None] - grid[None, :, None]) * scale  # image rows grow down, v up
    cos = np.cos(angle).astype(np.float32)[:, None, None]
    sin = np.sin(angle).astype(np.float32)[:, None, None]
    return cos * dx + sin * dy, cos * dy - sin * dx


# The inside tests: local coordinates u, v (from _local_coords, any equal shapes) -> bool array, True inside the
# shape. Every shape fits the unit disk.

def _star(u, v, points, inner):
    """Star polygon with `points` tips at radius 1, one pointing up, and concave corners at radius `inner`.

    With inner = cos(pi / points) the concave corners lie on straight edges: a regular polygon.
    """
    sector = 2 * np.pi / points
    t = np.mod(np.arctan2(u, v), sector)  # angle from the nearest tip clockwise, folded below by symmetry
    t = np.minimum(t, sector - t)
    r = np.hypot(u, v)
    x, y = r * np.cos(t), r * np.sin(t)
    # Inside when on the centre's side of the edge from the tip (1, 0) to the concave corner.
    cx, cy = inner * np.cos(sector / 2), inner * np.sin(sector / 2)
    return (cx - 1) * y - cy * (x - 1) >= 0


def _circle(u, v):
    return u * u + v * v <= 1


def _square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) <= np.sqrt(0.5)


def _triangle(u, v):
    return _star(u, v, 3, np.cos(np.pi / 3))


def _diamond(u, v):
    # Narrower than a square so that no rotation turns one into the other.
    return np.abs(u) / 0.6 + np.abs(v) <= 1


def _five_star(u, v):
    return _star(u, v, 5, 0.45)


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))


def _ring(u, v):
    return (u * u + v * v <= 1) & (u * u + v * v >= 0.55 ** 2)


def _crescent(u, v):
    return (u * u + v * v <= 1) & ((u - 0.5) ** 2 + v * v > 0.8 ** 2)


def _heart(u, v):
    # The sextic heart (x^2 + y^2 - 1)^3 <= x^2 y^3 spans a circle of radius 1.25 around (0, 0.25).
    x, y = 1.25 * u, 1.25 * v + 0.25
    return (x * x + y * y - 1) ** 3 <= x * x * y ** 3


def _arrow(u, v):
    shaft = (u >= -0.97) & (u <= 0.2) & (np.abs(v) <= 0.18)
    head = (u >= 0.2) & (np.abs(v) <= 0.6 * (0.97 - u) / 0.77)
    return shaft | head


_INSIDE = {
    "circle": _circle, "square": _square, "triangle": _triangle, "diamond": _diamond, "star": _five_star,
    "cross": _cross, "ring": _ring, "crescent": _crescent, "heart": _heart, "arrow": _arrow,
}


def _paint(rng, masks):
    """(m, size, size) bool masks -> (m, size, size, 3) float32 images in [0, 1]."""
    m = len(masks)
    light_shape = rng.random(m) < 0.5
    shape_colour = _colours(rng, m, light_shape)
    # Two colours from the background's half, blended by a texture in [0, 1].
    bg_a = _colours(rng, m, ~light_shape)
    bg_b = _colours(rng, m, ~light_shape)
    t = _texture(rng, m, masks.shape[1])
    # Channels first while painting: numpy broadcasts far faster over a long last axis than over one of 3.
    planes = bg_a[:, :, None, None] + t[:, None] * (bg_b - bg_a)[:, :, None, None]
    planes = np.where(masks[:, None], shape_colour[:, :, None, None], planes)
    # Uniform noise from random bytes: as good as Gaussian here, and several times cheaper to draw.
    noise = rng.integers(0, 256, planes.shape, np.uint8).astype(np.float32)
    planes += (noise - 127.5) * (2 * _PIXEL_NOISE / 255)
    return np.clip(planes, 0, 1, out=planes).transpose(0, 2, 3, 1)


def _colours(rng, m, light):
    """(m,) bool -> (m, 3) float32 random RGB, every channel in [_LIGHT_MIN, 1] if light else [0, _DARK_MAX]."""
    c = rng.random((m, 3), np.float32)
    return np.where(light[:, None], _LIGHT_MIN + (1 - _LIGHT_MIN) * c, _DARK_MAX * c).astype(np.float32)


def _texture(rng, m, size):
    """(m, size, size) float32 in [0, 1]: a random mix of smooth noise, a linear gradient and stripes."""
    grid = ((np.arange(size) + 0.5) / size - 0.5).astype(np.float32)  # pixel centres in (-0.5, 0.5)
    # Smooth noise: a coarse random grid, bilinearly upsampled with one interpolation matrix per axis.
    coarse = 6
    knots = np.linspace(-0.5, 0.5, coarse, dtype=np.float32)
    interp = np.maximum(0, 1 - np.abs(grid[:, None] - knots[None, :]) * (coarse - 1))  # (size, coarse)
    noise = interp @ rng.random((m, coarse, coarse), np.float32) @ interp.T

    angle = rng.uniform(0, 2 * np.pi, (2, m)).astype(np.float32)
    cos, sin = np.cos(angle)[:, :, None, None], np.sin(angle)[:, :, None, None]
    along = cos * grid[None, None, None, :] + sin * grid[None, None, :, None]  # (2, m, size, size)
    # Dividing by the largest |along| over the image makes the gradient span [0, 1] whatever its direction.
    gradient = 0.5 + along[0] / ((np.abs(cos[0]) + np.abs(sin[0])) * (2 * grid[-1]))
    # Stripe periods of 8..32 px at size 64: wide enough not to be mistaken for a shape's outline.
    cycles = rng.uniform(2, 8, m).astype(np.float32)[:, None, None]
    phase = rng.uniform(0, 2 * np.pi, m).astype(np.float32)[:, None, None]
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * cycles * along[1] + phase)

    weights = rng.dirichlet(np.ones(3), m).astype(np.float32)[:, :, None, None]
    return weights[:, 0] * noise + weights[:, 1] * gradient + weights[:, 2] * stripes
