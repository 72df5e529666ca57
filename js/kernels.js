// Pure functions for the FilterGrid view (docs/wire-format.md, "FilterGrid"): what the pixel under the pointer of
// a page of kernel tiles stands for. No DOM here, so node tests cover all of it.
import { trueValue } from "./tiles.js";

/**
 * [lo, hi], the true values bytes 0 and 255 stand for in row `row` of a FilterGrid page (one output filter; the
 * norms view has one row), so that a byte q stands for trueValue(lo, hi, q). Norms: [0, s], s the largest norm.
 * Kernels are sent as 0..254 with 127 for zero (s (q - 127) / 127, s the filter's largest |weight|): that is
 * [-s, 128 s / 127] over 0..255.
 */
export function kernelRange(meta, row) {
  const s = meta.scale?.[row] ?? 0;
  return meta.view === "norms" ? [0, s] : [-s, (128 * s) / 127];
}

/**
 * A value read back from a byte quantized over [lo, hi], with as many decimals as that carries: it is within
 * (hi - lo) / 510 of the value the byte was made from, so more digits would only be noise.
 */
export function quantizedText(value, lo, hi) {
  const step = (hi - lo) / 255;
  if (!(step > 0)) return String(value);
  const text = value.toFixed(Math.min(20, Math.max(0, Math.ceil(-Math.log10(step)))));
  return /^-[0.]*$/.test(text) ? text.slice(1) : text; // no "-0.000"
}

/**
 * The hover text for pixel (x, y) of tile `index` of a FilterGrid page (`meta`, `bytes` as sent), or null when
 * that pixel is not on the page: which output filter and input channel the tile shows, and the weight (or, in
 * the norms view, the kernel norm) there, read back from its byte. An RGB tile gives the weights of its three
 * input channels, in order.
 */
export function kernelHoverText(meta, bytes, index, x, y) {
  const { k = 0, h = 0, w = 0, c = 1, cols = 1, filters = [] } = meta;
  if (!(index >= 0 && index < k && x >= 0 && x < w && y >= 0 && y < h)) return null;
  const at = (index * h * w + y * w + x) * c;
  if (at + c > bytes.length) return null;
  if (meta.view === "norms") {
    const [lo, hi] = kernelRange(meta, 0);
    return `filter ${filters[y]} · input channel ${x} · norm ${quantizedText(trueValue(lo, hi, bytes[at]), lo, hi)}`;
  }
  const row = meta.per_input ? Math.floor(index / cols) : index;
  const [lo, hi] = kernelRange(meta, row);
  const weight = (j) => quantizedText(trueValue(lo, hi, bytes[at + j]), lo, hi);
  const where = `filter ${filters[row]}`;
  const pixel = `x ${x}, y ${y}`;
  if (meta.per_input) return `${where} · input channel ${index % cols} · ${pixel} · weight ${weight(0)}`;
  if (c === 3 && meta.inputs === 3) return `${where} · ${pixel} · weights R ${weight(0)}, G ${weight(1)}, B ${weight(2)}`;
  return `${where} · ${pixel} · weight ${weight(0)}`; // one input channel (shown grey)
}
