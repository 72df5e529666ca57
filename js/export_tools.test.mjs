import test from "node:test";
import assert from "node:assert/strict";
import {
  cnnwPngBounds, cnnwPngGradient, cnnwPngGradientLine, cnnwPngIntersect, cnnwPngMarker, cnnwPngName, cnnwPngRgba, cnnwPngScale,
  cnnwPngSplitTop, cnnwPngTransform, cnnwPngWords, cnnwKernelGuard,
} from "./export_tools.js";
import { gradientCss } from "./colorbar.js";

const box = (left, top, width = 6, height = 14) => ({ left, top, width, height });

test("cnnwPngRgba reads computed colours, with and without alpha", () => {
  assert.deepEqual(cnnwPngRgba("rgb(1, 2, 3)"), [1, 2, 3, 1]);
  assert.deepEqual(cnnwPngRgba("rgba(10, 20, 30, 0.5)"), [10, 20, 30, 0.5]);
  assert.deepEqual(cnnwPngRgba("rgba(0, 0, 0, 0)"), [0, 0, 0, 0]);
  assert.deepEqual(cnnwPngRgba("rgb(1 2 3 / 50%)"), [1, 2, 3, 0.5]);
  assert.equal(cnnwPngRgba("transparent"), null);
});

test("cnnwPngSplitTop splits at commas outside parentheses", () => {
  assert.deepEqual(cnnwPngSplitTop("to right, rgb(1, 2, 3) 0%, rgb(4, 5, 6) 100%"),
    ["to right", "rgb(1, 2, 3) 0%", "rgb(4, 5, 6) 100%"]);
});

test("cnnwPngGradient reads a colour bar's gradient: direction and every stop in order", () => {
  const table = Uint8Array.from({ length: 768 }, (_, j) => Math.floor(j / 3));
  const g = cnnwPngGradient(gradientCss(table));
  assert.equal(g.angle, 90);
  assert.equal(g.stops.length, 16);
  assert.deepEqual(g.stops[0], { color: "rgb(0, 0, 0)", at: 0 });
  assert.deepEqual(g.stops[15], { color: "rgb(255, 255, 255)", at: 1 });
  assert.ok(g.stops.every((s, i) => i === 0 || s.at >= g.stops[i - 1].at));
});

test("cnnwPngGradient fills missing positions evenly, takes angles, refuses what it cannot draw", () => {
  const g = cnnwPngGradient("linear-gradient(rgb(0, 0, 0), red, rgb(0, 0, 255))");
  assert.equal(g.angle, 180);
  assert.deepEqual(g.stops.map((s) => s.at), [0, 0.5, 1]);
  assert.equal(cnnwPngGradient("linear-gradient(45deg, red 10%, blue 90%)").angle, 45);
  assert.equal(cnnwPngGradient("linear-gradient(0.25turn, red, blue)").angle, 90);
  assert.equal(cnnwPngGradient("repeating-conic-gradient(#ccc 0 25%, #fff 0 50%)"), null);
  assert.equal(cnnwPngGradient("url(x.png)"), null);
  assert.equal(cnnwPngGradient("linear-gradient(to top right, red, blue)"), null);
});

test("cnnwPngGradientLine runs across the box in the CSS direction", () => {
  const line = (angle) => cnnwPngGradientLine(angle, 100, 10).map((v) => Math.round(v * 1e9) / 1e9 + 0);
  assert.deepEqual(line(90), [0, 5, 100, 5]);
  assert.deepEqual(line(180), [50, 0, 50, 10]);
});

test("cnnwPngWords splits at white space and at line breaks, and keeps each word's box", () => {
  const chars = [..."ab cd"].map((ch, i) => ({ ch, rect: ch === " " ? null : box(10 + 6 * i, 0) }));
  // "ef" wraps to the next line
  chars.push({ ch: " ", rect: null }, { ch: "e", rect: box(10, 16) }, { ch: "f", rect: box(16, 16) });
  const words = cnnwPngWords(chars);
  assert.deepEqual(words.map((w) => w.text), ["ab", "cd", "ef"]);
  assert.deepEqual([words[0].left, words[0].right, words[0].top, words[0].bottom], [10, 22, 0, 14]);
  assert.deepEqual([words[2].left, words[2].top], [10, 16]);
  // a word broken across lines (overflow-wrap: anywhere) is two words, one per line
  const broken = cnnwPngWords([{ ch: "x", rect: box(50, 0) }, { ch: "y", rect: box(0, 16) }]);
  assert.deepEqual(broken.map((w) => [w.text, w.left]), [["x", 50], ["y", 0]]);
  // characters with no box (collapsed, hidden) are not drawn
  assert.deepEqual(cnnwPngWords([{ ch: "z", rect: null }, { ch: "\n", rect: null }]), []);
});

test("cnnwPngBounds and cnnwPngIntersect", () => {
  const a = { left: 0, top: 0, right: 10, bottom: 10 };
  const b = { left: 5, top: -5, right: 20, bottom: 6 };
  assert.deepEqual(cnnwPngBounds([a, b, null, { left: 3, top: 3, right: 3, bottom: 9 }], 2),
    { left: -2, top: -7, right: 22, bottom: 12 });
  assert.equal(cnnwPngBounds([]), null);
  assert.deepEqual(cnnwPngIntersect(a, b), { left: 5, top: 0, right: 10, bottom: 6 });
  assert.equal(cnnwPngIntersect(null, a), a);
});

test("cnnwPngScale follows the biggest canvas, at least 1, near whole numbers rounded, capped", () => {
  assert.equal(cnnwPngScale([]), 1);
  assert.equal(cnnwPngScale([{ width: 300, height: 300, cssWidth: 300 }]), 1);
  assert.equal(cnnwPngScale([{ width: 300, height: 300, cssWidth: 299.5 }]), 1);
  assert.equal(cnnwPngScale([{ width: 64, height: 64, cssWidth: 160 }]), 1); // shown enlarged
  // a small thumbnail drawn at 4x does not set the scale; the big grid does
  assert.equal(cnnwPngScale([{ width: 192, height: 192, cssWidth: 48 }, { width: 600, height: 400, cssWidth: 300 }]),
    2);
  assert.equal(cnnwPngScale([{ width: 2000, height: 10, cssWidth: 100 }]), 4);
});

test("cnnwPngTransform and cnnwPngMarker", () => {
  assert.equal(cnnwPngTransform("ab cd", "uppercase"), "AB CD");
  assert.equal(cnnwPngTransform("ab cd", "capitalize"), "Ab Cd");
  assert.equal(cnnwPngTransform("Ab", "none"), "Ab");
  assert.equal(cnnwPngMarker("decimal", 3), "3.");
  assert.equal(cnnwPngMarker("disc", 1), "•");
  assert.equal(cnnwPngMarker("none", 1), "");
});

test("cnnwPngName names the file by the view's kind and the time", () => {
  const root = { classList: ["cnnw-grid", "other"] };
  const el = { querySelector: () => root };
  const when = new Date(2026, 11, 7, 13, 5, 2);
  assert.equal(cnnwPngName(el, when), "cnnwidget-grid-20261207-130502.png");
  assert.equal(cnnwPngName({ querySelector: () => null }, when), "cnnwidget-view-20261207-130502.png");
});

/** A model as anywidget gives it to a view (get, set, save_changes, send, on, widget_manager), recording sends. */
function fakeModel(state, manager) {
  const sent = [];
  const listeners = {};
  return {
    sent,
    widget_manager: manager,
    get: (name) => state[name],
    set(name, value) {
      state[name] = value;
      (listeners[`change:${name}`] ?? []).forEach((f) => f(value));
    },
    on(event, f) {
      (listeners[event] ??= []).push(f);
    },
    save_changes: () => sent.push({ ...state }),
    send: (content) => sent.push(content),
  };
}

test("cnnwKernelGuard: with the kernel gone, a kernel trait's change is put back and said; others stay", async () => {
  const notes = [];
  globalThis.document ??= { createElement: () => ({ style: {}, setAttribute() {}, isConnected: true }) };
  const el = { prepend: (node) => notes.push(node) };
  const manager = { kernel: { status: "idle", isDisposed: false } };
  const raw = fakeModel({ layer: "a", colormap: "viridis", error: "", _kernel_traits: ["layer"] }, manager);
  const model = cnnwKernelGuard(raw, el);
  model.set("layer", "b");
  model.save_changes(); // a kernel: sent as usual
  assert.equal(raw.sent.length, 1);
  manager.kernel = null; // shut down
  model.set("layer", "c");
  model.set("colormap", "gray");
  model.save_changes();
  assert.equal(raw.sent.length, 1); // nothing sent to a kernel that is gone
  assert.equal(model.get("layer"), "c"); // put back after the view's own reaction, not during it
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(model.get("layer"), "b");
  assert.equal(model.get("colormap"), "gray"); // drawn by the page: kept
  assert.match(model.get("error"), /^layer: needs the kernel, which is not running/);
  assert.equal(notes.length, 1); // the banner, once
  model.set("colormap", "magma");
  model.save_changes();
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(model.get("colormap"), "magma");
  assert.equal(notes.length, 1);
});

test("cnnwKernelGuard: a widget without _kernel_traits keeps every change; no manager: unchanged", async () => {
  const raw = fakeModel({ layer: "a" }, { kernel: null });
  const model = cnnwKernelGuard(raw, { prepend() {} });
  model.set("layer", "b");
  model.save_changes();
  await new Promise((resolve) => setTimeout(resolve, 5));
  assert.equal(model.get("layer"), "b");
  const exported = fakeModel({ layer: "a" }, {});
  assert.equal(cnnwKernelGuard(exported, {}), exported);
});
