// Pure functions for batches of RGB images sent as one uint8 buffer (n, size, size, 3), and for the small texts and
// numbers the feature visualization view shows. No DOM here, so node tests cover all of it.

/** True when `bytes` holds the whole batch `meta` ({ n, size }) describes (bytes and meta may arrive apart). */
export function batchComplete(bytes, meta) {
  const n = meta?.n ?? 0;
  const size = meta?.size ?? 0;
  return n > 0 && size > 0 && bytes.length >= n * size * size * 3;
}

/** Image i of the batch as RGBA pixels for an ImageData of size x size (alpha 255). */
export function rgbaOf(bytes, meta, i) {
  const pixels = meta.size * meta.size;
  if (!(i >= 0 && i < meta.n) || (i + 1) * pixels * 3 > bytes.length) {
    throw new RangeError(`image ${i} is outside the batch of ${meta.n} images of ${meta.size}x${meta.size}`);
  }
  const out = new Uint8ClampedArray(pixels * 4);
  for (let p = 0, s = i * pixels * 3; p < pixels; p++, s += 3) {
    out[4 * p] = bytes[s];
    out[4 * p + 1] = bytes[s + 1];
    out[4 * p + 2] = bytes[s + 2];
    out[4 * p + 3] = 255;
  }
  return out;
}

/** Display zoom for an image `size` px a side to show at about `target` px: whole pixels (sharp) when it is
 * smaller, a shrink factor when it is larger. */
export function zoomFor(size, target) {
  if (!(size > 0)) return 1;
  return size <= target ? Math.max(1, Math.round(target / size)) : target / size;
}

/** Indices typed as "3", "0, 5, 9" or "0 5 9": a list of whole numbers >= 0, or null if the text is not one. */
export function parseIndices(text) {
  const parts = String(text).split(/[\s,]+/).filter(Boolean);
  if (parts.length === 0 || !parts.every((p) => /^\d+$/.test(p))) return null;
  return parts.map(Number);
}

/** Fraction done (0..1) of a render of `batches` batches of `steps` steps, at `step` of batch `batch`. */
export function progressFraction(progress) {
  const { step = 0, steps = 0, batch = 0, batches = 1 } = progress ?? {};
  if (!(steps > 0) || !(batches > 0)) return 0;
  return Math.min(1, Math.max(0, (batch * steps + step) / (batches * steps)));
}

/** "page 2 of 4 · 3 rendered" for the gallery pager. */
export function pageText(page, pages, done) {
  return `page ${page + 1} of ${pages} · ${done.length} rendered`;
}

/** The channels a layer of `shape` has (its last dimension), or 0 when unknown. */
export function channelCount(shape) {
  return Array.isArray(shape) && shape.length > 0 ? shape[shape.length - 1] ?? 0 : 0;
}
