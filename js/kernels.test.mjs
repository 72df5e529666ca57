import test from "node:test";
import assert from "node:assert/strict";
import { kernelHoverText, kernelRange, quantizedText } from "./kernels.js";

// Pages as cnnwidget/widgets/filter_grid.py sends them (docs/wire-format.md, "FilterGrid").
// Per input channel: filters 4 and 9 of a layer reading 2 channels, 1x2 kernels; 4 tiles in 2 rows of 2.
const PER_INPUT = { k: 4, h: 1, w: 2, c: 1, cols: 2, per_input: true, view: "kernels", inputs: 2, filters: [4, 9],
  scale: [0.5, 2] };
const PER_INPUT_BYTES = Uint8Array.from([0, 254, 127, 51, 254, 0, 0, 204]); // kernels: 0..254, 127 = 0
// RGB: filters 0 and 1 of a first layer, 1x1 kernels.
const RGB = { k: 2, h: 1, w: 1, c: 3, cols: 2, per_input: false, view: "kernels", inputs: 3, filters: [0, 1],
  scale: [1, 0.25] };
const RGB_BYTES = Uint8Array.from([254, 0, 203, 0, 254, 51]);
// Norms: 2 output filters x 3 input channels in one tile; the largest norm is 3.
const NORMS = { k: 1, h: 2, w: 3, c: 1, cols: 1, per_input: false, view: "norms", inputs: 3, filters: [0, 1],
  scale: [3] };
const NORM_BYTES = Uint8Array.from([0, 85, 170, 255, 0, 0]);

test("kernelRange spans bytes 0..254 over [-s, s] of the row's filter for kernels, 0..255 over [0, largest norm] for norms", () => {
  assert.deepEqual(kernelRange(PER_INPUT, 1), [-2, (2 * 128) / 127]);
  assert.deepEqual(kernelRange(NORMS, 0), [0, 3]);
});

test("quantizedText keeps the decimals a byte over [lo, hi] carries and never prints -0", () => {
  assert.equal(quantizedText(0.123456, -0.5, 0.5), "0.123"); // a step of 1/255: three decimals
  assert.equal(quantizedText(0.123456, -2, 2), "0.12");
  assert.equal(quantizedText(-0.0004, -0.5, 0.5), "0.000");
  assert.equal(quantizedText(-1.5, -2, 2), "-1.50");
  assert.equal(quantizedText(12.3456, 0, 3000), "12");
  assert.equal(quantizedText(0, 0, 0), "0"); // an all-zero filter
});

test("kernelHoverText names the filter and input channel of a per-input tile and reads its weight back", () => {
  // tile 1 = filter 4, input 1; byte 127 is a zero weight, exactly
  assert.equal(kernelHoverText(PER_INPUT, PER_INPUT_BYTES, 1, 0, 0), "filter 4 · input channel 1 · x 0, y 0 · weight 0.000");
  // tile 2 = filter 9 (second row, scale 2), input 0: bytes 254 and 0 are +2 and -2
  assert.equal(kernelHoverText(PER_INPUT, PER_INPUT_BYTES, 2, 0, 0), "filter 9 · input channel 0 · x 0, y 0 · weight 2.00");
  assert.equal(kernelHoverText(PER_INPUT, PER_INPUT_BYTES, 2, 1, 0), "filter 9 · input channel 0 · x 1, y 0 · weight -2.00");
  assert.equal(kernelHoverText(PER_INPUT, PER_INPUT_BYTES, 3, 1, 0), "filter 9 · input channel 1 · x 1, y 0 · weight 1.21");
});

test("kernelHoverText gives the three input-channel weights of an RGB tile", () => {
  assert.equal(kernelHoverText(RGB, RGB_BYTES, 0, 0, 0), "filter 0 · x 0, y 0 · weights R 1.000, G -1.000, B 0.598");
  assert.equal(kernelHoverText(RGB, RGB_BYTES, 1, 0, 0), "filter 1 · x 0, y 0 · weights R -0.250, G 0.250, B -0.150");
});

test("kernelHoverText gives one weight for a layer reading one channel (drawn grey)", () => {
  const grey = { ...RGB, inputs: 1 };
  assert.equal(kernelHoverText(grey, Uint8Array.from([51, 51, 51, 0, 0, 0]), 0, 0, 0),
    "filter 0 · x 0, y 0 · weight -0.598");
});

test("kernelHoverText reads the norm of (output filter, input channel) in the norms view", () => {
  assert.equal(kernelHoverText(NORMS, NORM_BYTES, 0, 2, 0), "filter 0 · input channel 2 · norm 2.00");
  assert.equal(kernelHoverText(NORMS, NORM_BYTES, 0, 0, 1), "filter 1 · input channel 0 · norm 3.00");
});

test("kernelHoverText is null off the page or before its bytes have arrived", () => {
  assert.equal(kernelHoverText(PER_INPUT, PER_INPUT_BYTES, 4, 0, 0), null);
  assert.equal(kernelHoverText(PER_INPUT, PER_INPUT_BYTES, 0, 2, 0), null);
  assert.equal(kernelHoverText(PER_INPUT, PER_INPUT_BYTES, 0, 0, -1), null);
  assert.equal(kernelHoverText(PER_INPUT, PER_INPUT_BYTES.subarray(0, 6), 3, 0, 0), null);
  assert.equal(kernelHoverText({}, PER_INPUT_BYTES, 0, 0, 0), null);
});
