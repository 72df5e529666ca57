// Pure functions for signed attribution maps (docs: cnnwidget/widgets/attribution_map.py): which part of a map is
// drawn (the sign choice), on what scale (per map or shared) and through which colour-map index. A map arrives as
// uint8 bytes quantized over its own signed range [lo, hi], so every choice here is a 256-entry table per map and
// costs the browser no kernel round trip.
import { trueValue } from "./tiles.js";

/** The sign choices: the part of a map that is drawn. */
export const SIGNS = Object.freeze(["positive", "negative", "absolute", "both"]);

/** The value drawn for a signed value v under `sign`: max(v, 0), max(-v, 0), |v|, or v itself ("both"). */
export function signed(v, sign) {
  if (sign === "positive") return Math.max(v, 0);
  if (sign === "negative") return Math.max(-v, 0);
  if (sign === "absolute") return Math.abs(v);
  if (sign === "both") return v;
  throw new Error(`unknown sign ${JSON.stringify(sign)}; expected one of ${SIGNS.join(", ")}`);
}

/**
 * The scale M of one map quantized over [lo, hi] under `sign`: the largest value drawn (for "both", the largest
 * magnitude, so the range [-M, M] keeps 0 at the middle of a diverging colour map). Needs only lo and hi.
 */
export function mapScale(lo, hi, sign) {
  if (sign === "positive") return Math.max(hi, 0);
  if (sign === "negative") return Math.max(-lo, 0);
  signed(0, sign); // rejects an unknown sign
  return Math.max(Math.abs(lo), Math.abs(hi));
}

/**
 * The scale of every map, (k,) numbers, from the (k, 2) float `ranges`: its own under "map" normalization, the
 * largest of the maps that are `done` under "shared" (a map still computing is all zeros and takes no part).
 */
export function scales(ranges, done, sign, normalization) {
  const k = Math.floor(ranges.length / 2);
  const own = Array.from({ length: k }, (_, i) => mapScale(ranges[2 * i], ranges[2 * i + 1], sign));
  if (normalization === "map") return own;
  if (normalization !== "shared") throw new Error(`unknown normalization ${JSON.stringify(normalization)}`);
  const shared = own.reduce((m, s, i) => (done[i] ? Math.max(m, s) : m), 0);
  return own.map(() => shared);
}

/**
 * Colour-map index (0..255) of each byte q of a map quantized over [lo, hi], drawn under `sign` on scale M:
 * t = signed(v) / M for one-sided signs, (v / M + 1) / 2 for "both"; index round(255 t), clamped. A zero scale
 * (an empty map) draws index 0, or the middle for "both".
 */
export function heatLut(lo, hi, sign, M) {
  const lut = new Uint8Array(256);
  for (let q = 0; q < 256; q++) {
    const v = signed(trueValue(lo, hi, q), sign);
    let t = sign === "both" ? 0.5 : 0;
    if (M > 0) t = sign === "both" ? (v / M + 1) / 2 : v / M;
    lut[q] = Math.min(255, Math.max(0, Math.round(255 * t)));
  }
  return lut;
}

/** "0.123" style AUC text, or "…" while it is being computed. */
export function aucText(value) {
  return value == null ? "…" : value.toFixed(3);
}
