import test from "node:test";
import assert from "node:assert/strict";
import {
  bytesOf, floatsOf, gridLayout, indexLut, layerRange, normalizeIndex, paintIndexed, paintRGB, stackComplete,
  tileAt, tileScale, tileView, trueValue,
} from "./tiles.js";

// A stack of k=3 tiles of 2x2 as Python would send it: tile i holds bytes 10*i + [0, 1, 2, 3].
const META = { k: 3, h: 2, w: 2, channels: [5, 0, 9], n_channels: 12, page: 0, n_pages: 4 };
const STACK = Uint8Array.from([0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]);

/** Float32 pairs as the little-endian bytes of a Bytes trait, at an odd offset inside a DataView. */
function rangesTrait(pairs) {
  const buffer = new ArrayBuffer(1 + pairs.length * 4);
  const view = new DataView(buffer, 1);
  pairs.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return view;
}

test("bytesOf wraps a DataView without copying", () => {
  const view = new DataView(STACK.buffer, 4, 4);
  const bytes = bytesOf(view);
  assert.deepEqual(Array.from(bytes), [10, 11, 12, 13]);
  assert.equal(bytes.buffer, STACK.buffer);
  assert.equal(bytesOf(null).length, 0);
});

test("floatsOf reads little-endian float32 pairs at an unaligned offset", () => {
  assert.deepEqual(Array.from(floatsOf(rangesTrait([-1.5, 2, 0, 0.25]))), [-1.5, 2, 0, 0.25]);
});

test("tileView decodes tile i of a known stack", () => {
  assert.deepEqual(Array.from(tileView(STACK, META, 0)), [0, 1, 2, 3]);
  assert.deepEqual(Array.from(tileView(STACK, META, 2)), [20, 21, 22, 23]);
  assert.throws(() => tileView(STACK, META, 3), RangeError);
  assert.throws(() => tileView(STACK.subarray(0, 10), META, 2), RangeError);
});

test("stackComplete is false while the bytes or ranges of a new page have not all arrived", () => {
  const ranges = new Float32Array(6);
  assert.equal(stackComplete(STACK, ranges, META), true);
  assert.equal(stackComplete(STACK.subarray(0, 8), ranges, META), false);
  assert.equal(stackComplete(STACK, ranges.subarray(0, 4), META), false);
});

test("trueValue gives lo at q=0 and hi at q=255", () => {
  assert.equal(trueValue(-2, 6, 0), -2);
  assert.equal(trueValue(-2, 6, 255), 6);
  assert.equal(trueValue(0, 255, 17), 17);
  assert.equal(trueValue(3, 3, 0), 3);
});

test("layerRange is the smallest lo and the largest hi of the page", () => {
  assert.deepEqual(layerRange(Float32Array.from([0, 1, -0.5, 0.5, 0.25, 4])), [-0.5, 4]);
  assert.deepEqual(layerRange(new Float32Array(0)), [0, 0]);
});

test("per-layer normalization maps the global max to 255 and the global min to 0", () => {
  const [L, H] = layerRange(Float32Array.from([0, 1, 0, 4]));
  assert.equal(normalizeIndex(255, 0, 4, L, H), 255);
  assert.equal(normalizeIndex(0, 0, 1, L, H), 0);
  // The top of a tile whose own max is a quarter of the layer's sits a quarter up the colour map.
  assert.equal(normalizeIndex(255, 0, 1, L, H), 64);
});

test("per-channel normalization (L, H = lo, hi) is the identity on bytes", () => {
  const lut = indexLut(-3.7, 12.1, -3.7, 12.1);
  for (let q = 0; q < 256; q++) assert.equal(lut[q], q);
});

test("a constant layer maps to index 0 instead of dividing by zero", () => {
  assert.equal(normalizeIndex(0, 2, 2, 2, 2), 0);
  assert.deepEqual(Array.from(indexLut(2, 2, 2, 2).subarray(0, 3)), [0, 0, 0]);
});

test("tileScale zooms small tiles to at least 48 px by whole pixels", () => {
  assert.equal(tileScale(7, 7), 7);
  assert.equal(tileScale(28, 28), 2);
  assert.equal(tileScale(64, 64), 1);
  assert.equal(tileScale(1, 1), 48);
});

test("gridLayout fits as many columns as the width allows and sizes the canvas with gaps", () => {
  const layout = gridLayout(10, 50, 40, 230, 4);
  assert.equal(layout.cols, 4); // 4 * 50 + 3 * 4 = 212 <= 230 < 5 * 50 + 4 * 4
  assert.equal(layout.rows, 3);
  assert.equal(layout.width, 212);
  assert.equal(layout.height, 3 * 40 + 2 * 4);
  assert.deepEqual(layout.origins[5], [54, 44]);
});

test("gridLayout keeps one column when a tile is wider than the space, and none for no tiles", () => {
  assert.equal(gridLayout(3, 500, 500, 200, 4).cols, 1);
  const empty = gridLayout(0, 50, 50, 200, 4);
  assert.deepEqual([empty.cols, empty.rows, empty.width, empty.height], [0, 0, 0, 0]);
});

test("tileAt finds the tile and the point inside it", () => {
  const layout = gridLayout(10, 50, 40, 230, 4);
  assert.deepEqual(tileAt(layout, 0, 0), { index: 0, x: 0, y: 0 });
  assert.deepEqual(tileAt(layout, 54 + 49, 44 + 39), { index: 5, x: 49, y: 39 });
});

test("tileAt returns null on a gap, past the last tile and outside the grid", () => {
  const layout = gridLayout(10, 50, 40, 230, 4);
  assert.equal(tileAt(layout, 51, 10), null); // between columns 0 and 1
  assert.equal(tileAt(layout, 10, 41), null); // between rows 0 and 1
  assert.equal(tileAt(layout, 2 * 54 + 1, 2 * 44 + 1), null); // slot 10 of a 10-tile grid
  assert.equal(tileAt(layout, -1, 5), null);
  assert.equal(tileAt(layout, 4 * 54 + 1, 5), null);
});

test("tileAt at the exact edges: the last pixel of a tile hits it, the first gap pixel does not", () => {
  const layout = gridLayout(10, 50, 40, 230, 4); // tiles 50 x 40, gap 4, 4 columns
  assert.deepEqual(tileAt(layout, 49, 39), { index: 0, x: 49, y: 39 });
  assert.equal(tileAt(layout, 10, 40), null); // y == tileH: the first gap row
  assert.equal(tileAt(layout, 50, 10), null); // x == tileW: the first gap column
  assert.equal(tileAt(layout, 50, 40), null);
  assert.equal(tileAt(layout, 53, 10), null); // the last gap column
  assert.equal(tileAt(layout, 10, 43), null); // the last gap row
  assert.deepEqual(tileAt(layout, 54, 0), { index: 1, x: 0, y: 0 }); // x == tileW + gap: the next tile begins
  assert.deepEqual(tileAt(layout, 0, 44), { index: 4, x: 0, y: 0 }); // y == tileH + gap: the next row begins
  assert.equal(tileAt(layout, 3 * 54 + 50, 44 + 40), null); // the far corner of the last column, one past
  assert.deepEqual(tileAt(layout, 3 * 54 + 49, 44 + 39), { index: 7, x: 49, y: 39 });
  // A one-pixel gap and one-pixel tiles (a vector layer's units at zoom 1) leave no room for an off-by-one.
  const dense = gridLayout(6, 1, 1, 5, 1);
  assert.deepEqual([0, 1, 2, 3, 4].map((x) => tileAt(dense, x, 0)?.index ?? null), [0, null, 1, null, 2]);
  assert.deepEqual([0, 1, 2, 3].map((y) => tileAt(dense, 0, y)?.index ?? null), [0, null, 3, null]);
});

test("paintIndexed takes each of R, G and B from its own column of the colour table", () => {
  const image = { width: 2, height: 1, data: new Uint8ClampedArray(8) };
  const table = new Uint8Array(256 * 3);
  table.set([10, 20, 30], 7 * 3); // index 7
  table.set([40, 50, 60], 8 * 3); // index 8
  paintIndexed(image, { x: 0, y: 0, w: 2, h: 1 }, { data: Uint8Array.from([7, 8]), w: 2, h: 1 }, table,
    indexLut(0, 1, 0, 1));
  assert.deepEqual(Array.from(image.data), [10, 20, 30, 255, 40, 50, 60, 255]);
});

test("paintIndexed scales a tile up by whole pixels through the lut and colour table", () => {
  const image = { width: 5, height: 4, data: new Uint8ClampedArray(5 * 4 * 4) };
  const table = new Uint8Array(256 * 3).map((_, i) => Math.floor(i / 3)); // index i -> (i, i, i)
  const identity = indexLut(0, 1, 0, 1);
  paintIndexed(image, { x: 1, y: 0, w: 4, h: 4 }, { data: Uint8Array.from([1, 2, 3, 4]), w: 2, h: 2 }, table, identity);
  const red = (x, y) => image.data[(y * 5 + x) * 4];
  assert.deepEqual([0, 1, 2, 3, 4].map((x) => red(x, 0)), [0, 1, 1, 2, 2]);
  assert.deepEqual([0, 1, 2, 3, 4].map((x) => red(x, 3)), [0, 3, 3, 4, 4]);
  assert.equal(image.data[3], 0, "pixels outside the rect stay transparent");
  assert.equal(image.data[(0 * 5 + 1) * 4 + 3], 255);
});

test("paintIndexed with alpha blends over the pixels already there", () => {
  const image = { width: 1, height: 1, data: Uint8ClampedArray.from([200, 0, 100, 255]) };
  const table = new Uint8Array(256 * 3).fill(0);
  const source = { data: Uint8Array.from([0]), w: 1, h: 1 };
  paintIndexed(image, { x: 0, y: 0, w: 1, h: 1 }, source, table, new Uint8Array(256), 0.25);
  assert.deepEqual(Array.from(image.data), [150, 0, 75, 255]);
});

test("paintRGB copies an RGB image, resampled to the rect", () => {
  const image = { width: 2, height: 2, data: new Uint8ClampedArray(16) };
  paintRGB(image, { x: 0, y: 0, w: 2, h: 2 }, { data: Uint8Array.from([9, 8, 7]), w: 1, h: 1 });
  assert.deepEqual(Array.from(image.data.subarray(12)), [9, 8, 7, 255]);
});
