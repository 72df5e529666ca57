import test from "node:test";
import assert from "node:assert/strict";
import { epsilonText, parseEpsilon } from "./robustness_view.js";

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

test("epsilonText names a fraction only when it is the number itself, so it can be typed back", () => {
  assert.equal(epsilonText(8 / 255, "inf"), "8/255 (0.0314)");
  assert.equal(parseEpsilon("8/255"), 8 / 255);
  assert.equal(epsilonText(8, "inf"), "8.00"); // 8 on a [0, 255] range is not "8/255"
  assert.equal(epsilonText(0.05, "inf"), "0.0500");
  assert.equal(epsilonText(8 / 255, "2"), "0.0314");
  assert.equal(epsilonText(0, "inf"), "0.00");
});
