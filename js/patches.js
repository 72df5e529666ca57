// Receptive-field patches sent as one uint8 RGBA buffer (n, h, w, 4), alpha 0 outside the image (docs: the
// data-set views, cnnwidget/widgets/channel_card.py), and the short number texts those views show. The pure
// functions have node tests (patches.test.mjs); patchImg is the one DOM call.
import { pictureImg } from "./dom.js";

/** True when `bytes` holds every patch `meta` ({ n, h, w }) describes (bytes and meta may arrive apart). */
export function patchesComplete(bytes, meta) {
  const n = meta?.n ?? 0;
  return n > 0 && meta.h > 0 && meta.w > 0 && bytes.length >= n * meta.h * meta.w * 4;
}

/** Patch i as a fresh Uint8ClampedArray of h * w RGBA pixels (an ImageData's data). */
export function patchPixels(bytes, meta, i) {
  const size = meta.h * meta.w * 4;
  if (!(i >= 0 && i < meta.n) || (i + 1) * size > bytes.length) {
    throw new RangeError(`patch ${i} is outside the ${meta.n} patches of ${meta.h}x${meta.w}`);
  }
  return new Uint8ClampedArray(bytes.subarray(i * size, (i + 1) * size));
}

/** Patch i as an <img> at its own size (the page zooms it with CSS, pixels kept sharp): an image, not a canvas (see
 * pictureImg: a card's 16 patches were 16 composited layers). */
export function patchImg(bytes, meta, i, props = {}) {
  return pictureImg(new ImageData(patchPixels(bytes, meta, i), meta.w, meta.h), props);
}

/** A value in three significant digits ("0.00312", "41.2", "1.23e+5"); "–" for none (null, NaN). */
export function valueText(v) {
  if (v == null || !Number.isFinite(v)) return "–";
  if (v === 0) return "0";
  const a = Math.abs(v);
  return a >= 1e5 || a < 1e-3 ? v.toExponential(2) : String(Number(v.toPrecision(3)));
}

/** "12.5%" of a fraction in [0, 1]; "–" for none. */
export function percentText(f) {
  return f == null || !Number.isFinite(f) ? "–" : `${(100 * f).toFixed(1)}%`;
}

/** Bar heights (0..1) of histogram `counts` on a square-root scale (the zeros of a ReLU channel would flatten
 * every other bar on a linear one). */
export function histogramHeights(counts) {
  const top = Math.sqrt(Math.max(0, ...counts));
  return counts.map((c) => (top > 0 ? Math.sqrt(Math.max(0, c)) / top : 0));
}

/** The classes by mean activation, highest first, each with its bar width (0..1) against the largest |mean|. */
export function supportRows(support) {
  const rows = (support ?? []).filter((s) => s.mean != null && Number.isFinite(s.mean));
  const top = Math.max(0, ...rows.map((s) => Math.abs(s.mean)));
  return rows
    .map((s) => ({ ...s, width: top > 0 ? Math.abs(s.mean) / top : 0 }))
    .sort((a, b) => b.mean - a.mean || a.index - b.index);
}
