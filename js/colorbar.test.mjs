import test from "node:test";
import assert from "node:assert/strict";
import { barNumber } from "./colorbar.js";

test("barNumber gives a bar end 3 significant digits, exponents for tiny or huge values, text as given", () => {
  assert.equal(barNumber(1.23456), "1.23");
  assert.equal(barNumber(-0.08001), "-0.08");
  assert.equal(barNumber(0), "0");
  assert.equal(barNumber(0.0001234), "1.23e-4");
  assert.equal(barNumber(123456), "1.23e+5");
  assert.equal(barNumber("min"), "min");
  assert.equal(barNumber(NaN), "NaN");
});
