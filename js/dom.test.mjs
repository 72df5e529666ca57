import test from "node:test";
import assert from "node:assert/strict";
import { baseStyle } from "./dom.js";

test("baseStyle scopes every rule to the view's root class and styles the controls it is given", () => {
  const css = baseStyle("cnnw-am", ["select", "button"]);
  const selectors = [...css.matchAll(/(?:^|\})\s*([^{}]+?)\s*\{/g)].map((m) => m[1]);
  assert.deepEqual(selectors, [".cnnw-am", ".cnnw-am [hidden]", ".cnnw-am .cnnw-warning", ".cnnw-am label",
    ".cnnw-am select, .cnnw-am button"]);
  assert.match(baseStyle("cnnw-grid"), /\.cnnw-grid select, \.cnnw-grid input, \.cnnw-grid button \{/);
});
