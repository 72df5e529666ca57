import test from "node:test";
import assert from "node:assert/strict";
import { barNumber, gradientCss } from "./colorbar.js";

test("barNumber gives a bar end 3 significant digits, exponents for tiny or huge values, text as given", () => {
  assert.equal(barNumber(1.23456), "1.23");
  assert.equal(barNumber(-0.08001), "-0.08");
  assert.equal(barNumber(0), "0");
  assert.equal(barNumber(0.0001234), "1.23e-4");
  assert.equal(barNumber(123456), "1.23e+5");
  assert.equal(barNumber("min"), "min");
  assert.equal(barNumber(NaN), "NaN");
});

test("gradientCss runs from the table's first colour to its last in 16 even stops", () => {
  const table = Uint8Array.from({ length: 768 }, (_, j) => Math.floor(j / 3));  // grey ramp 0..255
  const css = gradientCss(table);
  assert.ok(css.startsWith("linear-gradient(to right, rgb(0, 0, 0) 0.0%, rgb(17, 17, 17) 6.7%"), css);
  assert.ok(css.endsWith("rgb(255, 255, 255) 100.0%)"), css);
  assert.equal(css.match(/rgb\(/g).length, 16);
});
