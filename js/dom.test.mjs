import test from "node:test";
import assert from "node:assert/strict";
import { baseStyle, jobFraction } from "./dom.js";

test("baseStyle scopes every rule to the view's root class and styles the controls it is given", () => {
  const css = baseStyle("cnnw-am", ["select", "button"]);
  const selectors = [...css.matchAll(/(?:^|\})\s*([^{}]+?)\s*\{/g)].map((m) => m[1]);
  assert.deepEqual(selectors, [".cnnw-am", ".cnnw-am [hidden]", ".cnnw-am .cnnw-warning", ".cnnw-am .cnnw-error",
    ".cnnw-am .cnnw-progress", ".cnnw-am .cnnw-progress-bar", ".cnnw-am label", ".cnnw-am select, .cnnw-am button"]);
  assert.match(baseStyle("cnnw-grid"), /\.cnnw-grid select, \.cnnw-grid input, \.cnnw-grid button \{/);
});

test("jobFraction counts finished units and the step inside the current one, within 0..1", () => {
  assert.equal(jobFraction(undefined), 0);
  assert.equal(jobFraction({ done: 0, total: 0 }), 0);
  assert.equal(jobFraction({ done: 1, total: 4 }), 0.25);
  assert.equal(jobFraction({ done: 1, total: 4, step: 5, steps: 10 }), 0.375);
  assert.equal(jobFraction({ done: 9, total: 4 }), 1);
});
