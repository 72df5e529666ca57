// The FilterGrid view: a page of a convolution layer's kernels as tiles (RGB images for a first layer, one
// coolwarm tile per input channel for deeper ones, one row per output filter) or a layer's kernel-norm matrix.
// It draws the uint8 buffer Python sends, names the filter, input channel and weight under the pointer (read back
// from the bytes and the per-filter scale, so hovering needs no kernel), and writes back the layer, view and page
// a person picks. Layer names only ever reach the page through textContent and option text.
import { baseStyle, errorBox, h, mountWidget, react, setOptions } from "./dom.js";
import { colormap } from "./colormaps.js";
import { bytesOf, gridLayout, indexLut, paintIndexed, paintRGB, tileAt, tileScale } from "./tiles.js";
import { kernelHoverText } from "./kernels.js";

const GAP = 3; // px between tiles, both ways
const IDENTITY = indexLut(0, 1, 0, 1); // bytes are already colour-map indices
const VIEWS = [["kernels", "kernels"], ["norms", "kernel norms (out × in)"]];

const STYLE = baseStyle("cnnw-filters", ["select", "button"]) + `
.cnnw-filters { display: flex; flex-direction: column; gap: 6px; padding: 4px 0; min-width: 0; }
.cnnw-filters .cnnw-toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
.cnnw-filters button:disabled { opacity: 0.4; }
.cnnw-filters .cnnw-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-filters .cnnw-wrap { position: relative; overflow: auto; max-height: 640px; }
.cnnw-filters canvas { image-rendering: pixelated; display: block; cursor: crosshair; }
.cnnw-filters .cnnw-filter-hover { position: absolute; z-index: 1; pointer-events: none; padding: 2px 6px;
  white-space: nowrap; background: var(--jp-layout-color0, #fff); border: 1px solid var(--jp-border-color1, #bdbdbd);
  box-shadow: 0 1px 4px rgba(0, 0, 0, 0.25); font-variant-numeric: tabular-nums; }
`;

export default {
  render({ model, el }) {
    const layerSelect = h("select", { class: "cnnw-layer-select" });
    const viewSelect = h("select", { class: "cnnw-view-select" });
    setOptions(viewSelect, VIEWS);
    const prev = h("button", { class: "cnnw-prev", type: "button", text: "‹ prev" });
    const next = h("button", { class: "cnnw-next", type: "button", text: "next ›" });
    const pageInfo = h("span", { class: "cnnw-page-info cnnw-muted" });
    const [error, showError] = errorBox(model);
    const canvas = h("canvas", { class: "cnnw-filter-canvas", width: 0, height: 0 });
    const ctx = canvas.getContext("2d");
    const hover = h("div", { class: "cnnw-filter-hover", hidden: true });
    const wrap = h("div", { class: "cnnw-wrap" }, [canvas, hover]);
    const histBox = h("div", { class: "cnnw-filter-hist" });
    el.replaceChildren(h("div", { class: "cnnw-filters" }, [
      h("style", { text: STYLE }),
      h("div", { class: "cnnw-toolbar" }, [
        h("label", {}, ["Layer ", layerSelect]), h("label", {}, ["Show ", viewSelect]), prev, pageInfo, next,
      ]),
      error,
      wrap,
      histBox,
    ]));
    const unmountHist = mountWidget(model, "hist", histBox);

    /** The page as drawn, kept for hit-testing and hover values. */
    let drawn = null;

    function draw() {
      const meta = model.get("meta") || {};
      const bytes = bytesOf(model.get("tiles"));
      const { k = 0, h: th = 0, w: tw = 0, c = 1, cols = 1 } = meta;
      hover.hidden = true;
      if (!k || bytes.length < k * th * tw * c) {
        drawn = null;
        canvas.width = canvas.height = 0;
        canvas.dataset.filters = "";
        return;
      }
      const zoom = meta.view === "norms" ? tileScale(th, tw, 256) : tileScale(th, tw, 36);
      // Exactly `cols` tiles a row (a row is one output filter in the per-input-channel view).
      const layout = gridLayout(k, tw * zoom, th * zoom, cols * (tw * zoom + GAP) - GAP, GAP);
      canvas.width = layout.width;
      canvas.height = layout.height;
      const image = ctx.createImageData(canvas.width, canvas.height);
      const table = colormap(meta.view === "norms" ? "viridis" : "coolwarm");
      const size = th * tw * c;
      layout.origins.forEach(([x, y], i) => {
        const rect = { x, y, w: layout.tileW, h: layout.tileH };
        const source = { data: bytes.subarray(i * size, (i + 1) * size), w: tw, h: th };
        if (c === 3) paintRGB(image, rect, source);
        else paintIndexed(image, rect, source, table, IDENTITY);
      });
      ctx.putImageData(image, 0, 0);
      drawn = { meta, bytes, layout, zoom };
      // What is drawn, for tests and tools that read the page (attributes: text, never HTML).
      Object.assign(canvas.dataset, { layer: model.get("layer"), view: meta.view, filters: meta.filters.join(",") });
    }

    function syncControls() {
      setOptions(layerSelect, model.get("layers").map((name) => [name, name]));
      layerSelect.value = model.get("layer");
      viewSelect.value = model.get("show");
      const current = model.get("page");
      const pages = model.get("n_pages");
      pageInfo.textContent = `page ${current + 1} of ${pages}`;
      prev.disabled = current <= 0;
      next.disabled = current >= pages - 1;
    }

    function onMove(event) {
      const box = canvas.getBoundingClientRect();
      const px = event.clientX - box.left;
      const py = event.clientY - box.top;
      const hit = drawn && tileAt(drawn.layout, (px * canvas.width) / box.width, (py * canvas.height) / box.height);
      const text = hit && kernelHoverText(drawn.meta, drawn.bytes, hit.index, Math.floor(hit.x / drawn.zoom),
        Math.floor(hit.y / drawn.zoom));
      if (!text) {
        hover.hidden = true;
        return;
      }
      hover.textContent = text;
      hover.hidden = false;
      // Beside the pointer (canvas and hover share the scrolled wrap's origin), flipped left near its right edge.
      const right = wrap.scrollLeft + wrap.clientWidth;
      const left = px + 14 + hover.offsetWidth > right ? px - 8 - hover.offsetWidth : px + 14;
      hover.style.left = `${Math.max(0, left)}px`;
      hover.style.top = `${py + 14}px`;
    }

    const set = (name, value) => {
      model.set(name, value);
      model.save_changes();
    };
    layerSelect.addEventListener("change", () => set("layer", layerSelect.value));
    viewSelect.addEventListener("change", () => set("show", viewSelect.value));
    prev.addEventListener("click", () => set("page", model.get("page") - 1));
    next.addEventListener("click", () => set("page", model.get("page") + 1));
    canvas.addEventListener("pointermove", onMove);
    canvas.addEventListener("pointerleave", () => { hover.hidden = true; });
    const { dispose } = react(model, [
      [syncControls, ["layers", "layer", "show", "page", "n_pages"]],
      [showError, ["error"]],
      [draw, ["tiles", "meta"]],
    ]);
    return () => {
      dispose();
      unmountHist();
    };
  },
};
