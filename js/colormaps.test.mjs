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

test("gray is the identity ramp at every index", () => {
  const t = colormap("gray");
  for (let i = 0; i < 256; i++) assert.deepEqual(rgb(t, i), [i, i, i]);
});

test("each map's first and last entries are its end colours exactly (index 255 is the top, not near it)", () => {
  const ends = { viridis: [[68, 1, 84], [253, 231, 37]], magma: [[0, 0, 4], [252, 253, 191]],
    gray: [[0, 0, 0], [255, 255, 255]], coolwarm: [[59, 76, 192], [180, 4, 38]] };
  for (const name of COLORMAPS) {
    const t = colormap(name);
    assert.deepEqual([rgb(t, 0), rgb(t, 255)], ends[name], name);
  }
});

test("coolwarm's middle control point sits halfway: entries 127 and 128 straddle its grey", () => {
  const t = colormap("coolwarm");
  const [a, b] = [rgb(t, 127), rgb(t, 128)];
  // 17 points: index 127.5 is the 9th (dddddd); the two neighbours are within one interpolation step of it
  for (const c of [0, 1, 2]) assert.ok(Math.abs(a[c] - 0xdd) <= 2 && Math.abs(b[c] - 0xdd) <= 2, `${a} ${b}`);
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
