import test from "node:test";
import assert from "node:assert/strict";
import {
  histogramHeights, patchesComplete, patchPixels, percentText, supportRows, valueText,
} from "./patches.js";

// Two 1x2 RGBA patches as Python sends them: patch i, pixel p holds bytes [100*i + 10*p + c].
const META = { n: 2, h: 1, w: 2 };
const BYTES = Uint8Array.from({ length: 16 }, (_, j) => 100 * Math.floor(j / 8) + 10 * Math.floor((j % 8) / 4) + (j % 4));

test("patchesComplete waits for every byte the meta describes", () => {
  assert.equal(patchesComplete(BYTES, META), true);
  assert.equal(patchesComplete(BYTES.subarray(0, 15), META), false);
  assert.equal(patchesComplete(BYTES, {}), false);
  assert.equal(patchesComplete(new Uint8Array(0), { n: 0, h: 8, w: 8 }), false);
});

test("patchPixels gives patch i's RGBA bytes as a copy, and refuses one outside the batch", () => {
  const px = patchPixels(BYTES, META, 1);
  assert.deepEqual(Array.from(px), [100, 101, 102, 103, 110, 111, 112, 113]);
  px[0] = 0;
  assert.equal(BYTES[8], 100);
  assert.throws(() => patchPixels(BYTES, META, 2), RangeError);
});

test("valueText and percentText", () => {
  assert.equal(valueText(4.91234), "4.91");
  assert.equal(valueText(0), "0");
  assert.equal(valueText(0.000123), "1.23e-4");
  assert.equal(valueText(null), "–");
  assert.equal(valueText(Number.NaN), "–");
  assert.equal(percentText(0.914), "91.4%");
  assert.equal(percentText(null), "–");
});

test("histogramHeights are on a square-root scale, the tallest bar 1", () => {
  assert.deepEqual(histogramHeights([0, 100, 25]), [0, 1, 0.5]);
  assert.deepEqual(histogramHeights([0, 0]), [0, 0]);
});

test("supportRows sorts classes by mean, highest first, with widths against the largest |mean|", () => {
  const rows = supportRows([{ index: 0, name: "a", mean: 0.5, count: 3 }, { index: 1, name: "b", mean: 1, count: 2 },
    { index: 2, name: "c", mean: null, count: 0 }]);
  assert.deepEqual(rows.map((r) => [r.name, r.width]), [["b", 1], ["a", 0.5]]);
  assert.deepEqual(supportRows(undefined), []);
});
