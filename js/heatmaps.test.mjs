import test from "node:test";
import assert from "node:assert/strict";
import { aucText, heatLut, mapScale, scales, signed } from "./heatmaps.js";

test("signed keeps the part of a value the sign choice asks for", () => {
  assert.deepEqual([2, -3].map((v) => signed(v, "positive")), [2, 0]);
  assert.deepEqual([2, -3].map((v) => signed(v, "negative")), [0, 3]);
  assert.deepEqual([2, -3].map((v) => signed(v, "absolute")), [2, 3]);
  assert.deepEqual([2, -3].map((v) => signed(v, "both")), [2, -3]);
  assert.throws(() => signed(1, "up"), /unknown sign/);
});

test("mapScale needs only the quantization range", () => {
  assert.equal(mapScale(-1, 4, "positive"), 4);
  assert.equal(mapScale(-1, 4, "negative"), 1);
  assert.equal(mapScale(-5, 4, "absolute"), 5);
  assert.equal(mapScale(-5, 4, "both"), 5);
  assert.equal(mapScale(1, 4, "negative"), 0); // an all-positive map has nothing negative
  assert.throws(() => mapScale(0, 1, "up"), /unknown sign/);
});

test("scales are per map, or the largest of the finished maps when shared", () => {
  const ranges = [0, 2, -1, 8, 0, 0];
  assert.deepEqual(scales(ranges, [true, true, false], "positive", "map"), [2, 8, 0]);
  assert.deepEqual(scales(ranges, [true, true, false], "positive", "shared"), [8, 8, 8]);
  assert.deepEqual(scales(ranges, [true, false, false], "positive", "shared"), [2, 2, 2]);
  assert.throws(() => scales(ranges, [], "positive", "layer"), /unknown normalization/);
});

test("heatLut maps a signed map's bytes onto the colour map for each sign", () => {
  // a map over [-1, 3]: byte 0 is -1, byte 255 is 3, byte 64 is about 0
  const pos = heatLut(-1, 3, "positive", 3);
  assert.equal(pos[255], 255);
  assert.equal(pos[0], 0);
  assert.equal(pos[64], 0); // about 0.004 of 3
  assert.equal(pos[128], 86); // 1.0078 of 3
  const neg = heatLut(-1, 3, "negative", 1);
  assert.equal(neg[0], 255);
  assert.equal(neg[255], 0);
  const abs = heatLut(-1, 3, "absolute", 3);
  assert.equal(abs[0], 85); // |-1| / 3
  const both = heatLut(-1, 3, "both", 3);
  assert.equal(both[255], 255);
  assert.equal(both[0], Math.round(255 * (1 - 1 / 3) / 2)); // -1 of [-3, 3]
  // a shared scale larger than the map's own dims it
  assert.equal(heatLut(0, 2, "positive", 4)[255], 128);
  // an empty map: index 0, or the middle for "both"
  assert.equal(heatLut(0, 0, "positive", 0)[200], 0);
  assert.equal(heatLut(0, 0, "both", 0)[200], 128);
});

test("aucText shows three decimals or an ellipsis while pending", () => {
  assert.equal(aucText(0.12345), "0.123");
  assert.equal(aucText(null), "…");
  assert.equal(aucText(undefined), "…");
});
