import test from "node:test";
import assert from "node:assert/strict";
import { colormap, COLORMAPS } from "./colormaps.js";

/** The RGB triple at index i of a table. */
const rgb = (table, i) => Array.from(table.subarray(i * 3, i * 3 + 3));

/** Each component within `tol` of the expected one. */
function near(actual, expected, tol = 2) {
  assert.ok(actual.every((v, c) => Math.abs(v - expected[c]) <= tol), `${actual} is not near ${expected}`);
}

test("every listed colour map is a 256-entry RGB table", () => {
  assert.deepEqual([...COLORMAPS].sort(), ["coolwarm", "gray", "magma", "viridis"]);
  for (const name of COLORMAPS) assert.equal(colormap(name).length, 256 * 3);
});

test("viridis runs from dark purple to yellow, as matplotlib's", () => {
  const t = colormap("viridis");
  near(rgb(t, 0), [68, 1, 84]);
  near(rgb(t, 128), [33, 145, 140]);
  near(rgb(t, 255), [253, 231, 37]);
});

test("magma runs from black to pale yellow", () => {
  const t = colormap("magma");
  near(rgb(t, 0), [0, 0, 4]);
  near(rgb(t, 255), [252, 253, 191]);
});

test("gray is the identity ramp", () => {
  const t = colormap("gray");
  for (const i of [0, 1, 100, 254, 255]) assert.deepEqual(rgb(t, i), [i, i, i]);
});

test("coolwarm is blue at the low end, neutral in the middle, red at the high end", () => {
  const t = colormap("coolwarm");
  near(rgb(t, 0), [59, 76, 192]);
  near(rgb(t, 255), [180, 4, 38]);
  const [r, g, b] = rgb(t, 128);
  assert.ok(Math.max(r, g, b) - Math.min(r, g, b) < 12, "the middle is close to gray");
});

test("each call returns a fresh table, so a caller cannot corrupt another's", () => {
  const a = colormap("viridis");
  a.fill(0);
  near(rgb(colormap("viridis"), 255), [253, 231, 37]);
});

test("an unknown name throws and lists the known ones", () => {
  assert.throws(() => colormap("jet"), /unknown colour map "jet".*viridis/);
  assert.throws(() => colormap("constructor"), /unknown colour map/);
});
