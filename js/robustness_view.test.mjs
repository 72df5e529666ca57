import test from "node:test";
import assert from "node:assert/strict";
import { parseEpsilon } from "./robustness_view.js";

test("parseEpsilon takes decimals and a/b fractions as the epsilon box shows them", () => {
  assert.equal(parseEpsilon("2/255"), 2 / 255);
  assert.equal(parseEpsilon(" 8 / 255 "), 8 / 255);
  assert.equal(parseEpsilon("0.02"), 0.02);
  assert.equal(parseEpsilon("1e-2"), 0.01);
  assert.equal(parseEpsilon("-0.1"), -0.1); // a number: the kernel refuses it, saying why
});

test("parseEpsilon leaves other text to the kernel to refuse", () => {
  for (const text of ["abc", "nan", "", "1/0", "1/2/3", "Infinity", "0x10"]) assert.equal(parseEpsilon(text), null, text);
});
