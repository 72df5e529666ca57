import test from "node:test";
import assert from "node:assert/strict";
import {
  batchComplete, channelCount, pageText, parseIndices, progressFraction, rgbaOf, zoomFor,
} from "./images.js";

// A batch of two 2x2 RGB images as Python sends it: image i, pixel p holds bytes [100*i + 10*p + c].
const META = { n: 2, size: 2 };
const BATCH = Uint8Array.from({ length: 24 },
  (_, j) => 100 * Math.floor(j / 12) + 10 * Math.floor((j % 12) / 3) + (j % 3));

test("batchComplete waits for every byte of the batch the meta describes", () => {
  assert.equal(batchComplete(BATCH, META), true);
  assert.equal(batchComplete(BATCH.subarray(0, 23), META), false);
  assert.equal(batchComplete(BATCH, {}), false);
  assert.equal(batchComplete(new Uint8Array(0), { n: 0, size: 64 }), false);
});

test("rgbaOf gives image i's pixels with opaque alpha", () => {
  assert.deepEqual(Array.from(rgbaOf(BATCH, META, 1)),
    [100, 101, 102, 255, 110, 111, 112, 255, 120, 121, 122, 255, 130, 131, 132, 255]);
  assert.equal(rgbaOf(BATCH, META, 0)[4], 10);
  assert.throws(() => rgbaOf(BATCH, META, 2), RangeError);
  assert.throws(() => rgbaOf(BATCH.subarray(0, 20), META, 1), RangeError);
});

test("zoomFor enlarges small images by whole pixels and shrinks large ones", () => {
  assert.equal(zoomFor(64, 256), 4);
  assert.equal(zoomFor(64, 112), 2);
  assert.equal(zoomFor(224, 224), 1);
  assert.equal(zoomFor(512, 256), 0.5);
  assert.equal(zoomFor(0, 256), 1);
});

test("parseIndices reads lists of whole numbers and refuses anything else", () => {
  assert.deepEqual(parseIndices("3"), [3]);
  assert.deepEqual(parseIndices(" 0, 5,9 "), [0, 5, 9]);
  assert.deepEqual(parseIndices("1 2"), [1, 2]);
  assert.equal(parseIndices(""), null);
  assert.equal(parseIndices("-1"), null);
  assert.equal(parseIndices("2.5"), null);
  assert.equal(parseIndices("a"), null);
});

test("progressFraction counts the steps of earlier gallery batches", () => {
  assert.equal(progressFraction({ step: 64, steps: 256, batch: 0, batches: 1 }), 0.25);
  assert.equal(progressFraction({ step: 32, steps: 64, batch: 1, batches: 4 }), 0.375);
  assert.equal(progressFraction({}), 0);
  assert.equal(progressFraction({ step: 300, steps: 256 }), 1);
});

test("pageText and channelCount", () => {
  assert.equal(pageText(1, 4, [0, 1, 2]), "page 2 of 4 · 3 rendered");
  assert.equal(channelCount([16, 16, 64]), 64);
  assert.equal(channelCount([128]), 128);
  assert.equal(channelCount(undefined), 0);
});
