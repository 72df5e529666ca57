import test from "node:test";
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { baseStyle, jobFraction, PROGRESS_TRAITS, progressBar } from "./dom.js";

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

test("an idle progress bar is empty and hidden, whatever the last job's progress says", () => {
  const element = () => ({ style: {}, dataset: {}, attributes: {}, children: [],
    setAttribute(name, value) { this.attributes[name] = String(value); },
    append(...nodes) { this.children.push(...nodes); } });
  globalThis.document = { createElement: element };
  try {
    const state = { progress: { done: 4, total: 4 }, running: false }; // a finished job's last report
    const [node, draw] = progressBar({ get: (name) => state[name] });
    const bar = node.children[0];
    const shown = () => [bar.style.width, node.style.visibility, node.attributes["aria-valuenow"]];
    draw();
    assert.deepEqual(shown(), ["0.0%", "hidden", "0"]);
    Object.assign(state, { running: true, progress: { done: 1, total: 4 } });
    draw();
    assert.deepEqual(shown(), ["25.0%", "visible", "25"]);
    Object.assign(state, { running: false, progress: { done: 4, total: 4 } });
    draw();
    assert.deepEqual(shown(), ["0.0%", "hidden", "0"]);
  } finally {
    delete globalThis.document;
  }
});

test("every view with a progress bar redraws it when a job starts or ends (PROGRESS_TRAITS)", () => {
  assert.deepEqual(PROGRESS_TRAITS, ["progress", "running"]);
  const dir = new URL(".", import.meta.url);
  const views = readdirSync(dir).filter((f) => f.endsWith(".js") && f !== "dom.js")
    .map((f) => [f, readFileSync(new URL(f, dir), "utf8")]).filter(([, text]) => /progressBar\(model/.test(text));
  assert.ok(views.length >= 8, views.map(([f]) => f).join(", "));
  for (const [file, text] of views) {
    assert.match(text, /\[draw\w*, PROGRESS_TRAITS\]/, `${file} reacts to the progress trait alone`);
  }
});

test("kernelLive: a manager with a kernel that has not gone; no manager or no kernel (an exported page) is none", async () => {
  const { kernelLive } = await import("./dom.js");
  assert.equal(kernelLive(undefined), false);
  assert.equal(kernelLive({ widget_manager: {} }), false); // the exported page's manager has no kernel
  assert.equal(kernelLive({ widget_manager: { kernel: null } }), false);
  assert.equal(kernelLive({ widget_manager: { kernel: { status: "idle", isDisposed: false } } }), true);
  assert.equal(kernelLive({ widget_manager: { kernel: { status: "dead" } } }), false);
  assert.equal(kernelLive({ widget_manager: { kernel: { status: "idle", isDisposed: true } } }), false);
  assert.equal(kernelLive({ widget_manager: { get kernel() { throw new Error("disposed"); } } }), false);
});
