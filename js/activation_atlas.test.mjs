import test from "node:test";
import assert from "node:assert/strict";
import { cellText, iconShare } from "./activation_atlas.js";

test("iconShare sizes icons by the square root of their count, never below 0.3 of the cell", () => {
  assert.equal(iconShare(16, 16), 1);
  assert.equal(iconShare(4, 16), 0.5);
  assert.equal(iconShare(1, 100), 0.3);
  assert.equal(iconShare(0, 16), 0);
  assert.equal(iconShare(3, 0), 0);
});

test("cellText names the count, the class and its share, and says where the class came from", () => {
  const meta = { count: [12, 3], label: [1, -1], support: [0.75, 0], class_source: "labels" };
  assert.equal(cellText(meta, 0, ["a", "<b>"]), "count 12 · <b> (75% of its labels)");
  assert.equal(cellText(meta, 1, ["a", "<b>"]), "count 3 · no class");
  assert.equal(cellText({ ...meta, class_source: "predictions" }, 0, []),
    "count 12 · 1 (75% of its predicted classes)");
});

test("cellText says when a cell's activations are all zero, so no icon will come", () => {
  const meta = { count: [5, 2], label: [0, 0], support: [1, 1], class_source: "labels", renderable: [true, false] };
  assert.equal(cellText(meta, 0, ["a"]), "count 5 · a (100% of its labels)");
  assert.equal(cellText(meta, 1, ["a"]), "count 2 · a (100% of its labels) · every activation here is zero: no icon");
});
