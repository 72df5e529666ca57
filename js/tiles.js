// Pure functions over the tile wire format (docs/wire-format.md): decoding, normalization, layout, hit-testing and
// painting into RGBA pixel arrays. No DOM here, so node tests cover all of it.

/** A Uint8Array over a synced Bytes trait (a DataView in the browser), without copying; empty for null. */
export function bytesOf(value) {
  if (value == null) return new Uint8Array(0);
  if (ArrayBuffer.isView(value)) return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  return new Uint8Array(value);
}

/** Little-endian float32 values of a Bytes trait; read through a DataView since the offset may be unaligned. */
export function floatsOf(value) {
  const bytes = bytesOf(value);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.byteLength >> 2);
  for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  return out;
}

/** True when `bytes` and `ranges` hold the whole stack `meta` describes (they may arrive a message apart). */
export function stackComplete(bytes, ranges, meta) {
  const k = meta.k ?? 0;
  return bytes.length >= k * meta.h * meta.w && ranges.length >= 2 * k;
}

/** The (h*w) bytes of tile i of the stack, as a view into `bytes`. */
export function tileView(bytes, meta, i) {
  const size = meta.h * meta.w;
  if (!(i >= 0 && i < meta.k) || (i + 1) * size > bytes.length) {
    throw new RangeError(`tile ${i} is outside the stack of ${meta.k} tiles of ${meta.h}x${meta.w}`);
  }
  return bytes.subarray(i * size, (i + 1) * size);
}

/** The activation a byte q stands for, in a tile quantized over [lo, hi]. */
export function trueValue(lo, hi, q) {
  return lo + ((hi - lo) * q) / 255;
}

/** [min lo, max hi] over the (k, 2) ranges of a page: the range every tile shares under per-layer normalization. */
export function layerRange(ranges) {
  let low = Infinity;
  let high = -Infinity;
  for (let i = 0; i + 1 < ranges.length; i += 2) {
    low = Math.min(low, ranges[i]);
    high = Math.max(high, ranges[i + 1]);
  }
  return low <= high ? [low, high] : [0, 0];
}

/** Colour-map index (0..255) of byte q of a tile quantized over [lo, hi], when drawn on the shared range [L, H]. */
export function normalizeIndex(q, lo, hi, L, H) {
  if (!(H > L)) return 0;
  const t = (trueValue(lo, hi, q) - L) / (H - L);
  return Math.min(255, Math.max(0, Math.round(255 * t)));
}

/** The byte → colour-map index table of one tile; [L, H] = [lo, hi] gives per-channel normalization. */
export function indexLut(lo, hi, L, H) {
  const lut = new Uint8Array(256);
  for (let q = 0; q < 256; q++) lut[q] = normalizeIndex(q, lo, hi, L, H);
  return lut;
}

/** The smallest integer zoom that makes an h x w tile at least `minPx` on its longer side (whole pixels stay sharp). */
export function tileScale(h, w, minPx = 48) {
  return Math.max(1, Math.ceil(minPx / Math.max(h, w, 1)));
}

/**
 * Place k tiles of tileW x tileH display pixels in rows, `gap` pixels apart, as many columns as fit in maxWidth
 * (at least one). Returns { k, cols, rows, tileW, tileH, gap, width, height, origins: [[x, y], ...] }.
 */
export function gridLayout(k, tileW, tileH, maxWidth, gap) {
  const fit = Math.floor((maxWidth + gap) / (tileW + gap));
  const cols = k > 0 ? Math.min(k, Math.max(1, fit)) : 0;
  const rows = cols > 0 ? Math.ceil(k / cols) : 0;
  const origins = [];
  for (let i = 0; i < k; i++) origins.push([(i % cols) * (tileW + gap), Math.floor(i / cols) * (tileH + gap)]);
  return {
    k, cols, rows, tileW, tileH, gap, origins,
    width: cols > 0 ? cols * tileW + (cols - 1) * gap : 0,
    height: rows > 0 ? rows * tileH + (rows - 1) * gap : 0,
  };
}

/** The tile under display point (x, y): { index, x, y } with x, y inside the tile; null on a gap or outside. */
export function tileAt(layout, x, y) {
  const { cols, tileW, tileH, gap } = layout;
  if (x < 0 || y < 0 || cols === 0) return null;
  const col = Math.floor(x / (tileW + gap));
  const row = Math.floor(y / (tileH + gap));
  const inX = x - col * (tileW + gap);
  const inY = y - row * (tileH + gap);
  const index = row * cols + col;
  if (col >= cols || inX >= tileW || inY >= tileH || index >= layout.k) return null;
  return { index, x: inX, y: inY };
}

/** For each destination column (or row) of a span of `out` pixels, the nearest of `n` source columns. */
function nearest(out, n) {
  const idx = new Int32Array(out);
  for (let d = 0; d < out; d++) idx[d] = Math.min(n - 1, Math.floor((d * n) / out));
  return idx;
}

/**
 * Draw a single-channel uint8 source { data, w, h } into `rect` { x, y, w, h } of `image` (ImageData or
 * { data: Uint8ClampedArray, width }), nearest-neighbour, through `lut` (byte → index) and the colour `table`;
 * `alpha` < 1 blends over what is there. The rect must lie inside the image.
 */
export function paintIndexed(image, rect, source, table, lut, alpha = 1) {
  const xs = nearest(rect.w, source.w);
  const ys = nearest(rect.h, source.h);
  const out = image.data;
  for (let dy = 0; dy < rect.h; dy++) {
    const srcRow = ys[dy] * source.w;
    let o = ((rect.y + dy) * image.width + rect.x) * 4;
    for (let dx = 0; dx < rect.w; dx++, o += 4) {
      const c = lut[source.data[srcRow + xs[dx]]] * 3;
      out[o] += (table[c] - out[o]) * alpha;
      out[o + 1] += (table[c + 1] - out[o + 1]) * alpha;
      out[o + 2] += (table[c + 2] - out[o + 2]) * alpha;
      out[o + 3] += (255 - out[o + 3]) * alpha;
    }
  }
}

/** Draw an RGB uint8 source { data, w, h } (h, w, 3) into `rect` of `image`, nearest-neighbour, opaque. */
export function paintRGB(image, rect, source) {
  const xs = nearest(rect.w, source.w);
  const ys = nearest(rect.h, source.h);
  const out = image.data;
  for (let dy = 0; dy < rect.h; dy++) {
    const srcRow = ys[dy] * source.w;
    let o = ((rect.y + dy) * image.width + rect.x) * 4;
    for (let dx = 0; dx < rect.w; dx++, o += 4) {
      const s = (srcRow + xs[dx]) * 3;
      out[o] = source.data[s];
      out[o + 1] = source.data[s + 1];
      out[o + 2] = source.data[s + 2];
      out[o + 3] = 255;
    }
  }
}
