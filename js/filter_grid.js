// The FilterGrid view: a page of a convolution layer's kernels as tiles (RGB images for a first layer, one
// coolwarm tile per input channel for deeper ones, one row per output filter) or a layer's kernel-norm matrix.
// It draws the uint8 buffer Python sends and writes back the layer, view and page a person picks.
// Layer names only ever reach the page through textContent and option text.
import { h, setOptions } from "./dom.js";
import { colormap } from "./colormaps.js";
import { bytesOf, indexLut, paintIndexed, paintRGB, tileScale } from "./tiles.js";

const GAP = 3; // px between tiles
const ROW_GAP = 8; // px between the rows of output filters in the per-input-channel view
const IDENTITY = indexLut(0, 1, 0, 1); // bytes are already colour-map indices
const VIEWS = [["kernels", "kernels"], ["norms", "kernel norms (out × in)"]];

const STYLE = `
.cnnw-filters { display: flex; flex-direction: column; gap: 6px; padding: 4px 0;
  font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color1, #212121); }
.cnnw-filters [hidden] { display: none !important; }
.cnnw-filters .cnnw-toolbar { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
.cnnw-filters select, .cnnw-filters button { font: inherit; color: inherit; background: var(--jp-layout-color1, #fff);
  border: 1px solid var(--jp-border-color1, #bdbdbd); border-radius: 2px; }
.cnnw-filters button:disabled { opacity: 0.4; }
.cnnw-filters .cnnw-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-filters .cnnw-error { padding: 4px 8px; border-left: 3px solid var(--jp-error-color1, #d32f2f);
  color: var(--jp-error-color1, #d32f2f); background: var(--jp-layout-color2, #eeeeee); white-space: pre-wrap; }
.cnnw-filters .cnnw-wrap { overflow: auto; max-height: 640px; }
.cnnw-filters canvas { image-rendering: pixelated; display: block; }
`;

export default {
  render({ model, el }) {
    const layerSelect = h("select", { class: "cnnw-layer-select" });
    const viewSelect = h("select", { class: "cnnw-view-select" });
    setOptions(viewSelect, VIEWS);
    const prev = h("button", { class: "cnnw-prev", type: "button", text: "‹ prev" });
    const next = h("button", { class: "cnnw-next", type: "button", text: "next ›" });
    const pageInfo = h("span", { class: "cnnw-page-info cnnw-muted" });
    const error = h("div", { class: "cnnw-error", role: "alert", hidden: true });
    const canvas = h("canvas", { class: "cnnw-filter-canvas", width: 0, height: 0 });
    const ctx = canvas.getContext("2d");
    el.append(h("div", { class: "cnnw-filters" }, [
      h("style", { text: STYLE }),
      h("div", { class: "cnnw-toolbar" }, [
        h("label", {}, ["Layer ", layerSelect]), h("label", {}, ["Show ", viewSelect]), prev, pageInfo, next,
      ]),
      error,
      h("div", { class: "cnnw-wrap" }, [canvas]),
    ]));

    function draw() {
      const meta = model.get("meta") || {};
      const bytes = bytesOf(model.get("tiles"));
      const { k = 0, h: th = 0, w: tw = 0, c = 1, cols = 1 } = meta;
      if (!k || bytes.length < k * th * tw * c) {
        canvas.width = canvas.height = 0;
        return;
      }
      const zoom = meta.view === "norms" ? tileScale(th, tw, 256) : tileScale(th, tw, 36);
      const rows = Math.ceil(k / cols);
      const rowGap = meta.per_input ? ROW_GAP : GAP;
      canvas.width = cols * (tw * zoom + GAP);
      canvas.height = rows * (th * zoom + rowGap);
      const image = ctx.createImageData(canvas.width, canvas.height);
      const table = colormap(meta.view === "norms" ? "viridis" : "coolwarm");
      const size = th * tw * c;
      for (let i = 0; i < k; i++) {
        const rect = { x: (i % cols) * (tw * zoom + GAP), y: Math.floor(i / cols) * (th * zoom + rowGap),
          w: tw * zoom, h: th * zoom };
        const source = { data: bytes.subarray(i * size, (i + 1) * size), w: tw, h: th };
        if (c === 3) paintRGB(image, rect, source);
        else paintIndexed(image, rect, source, table, IDENTITY);
      }
      ctx.putImageData(image, 0, 0);
    }

    function sync() {
      setOptions(layerSelect, model.get("layers").map((name) => [name, name]));
      layerSelect.value = model.get("layer");
      viewSelect.value = model.get("show");
      const page = model.get("page");
      const pages = model.get("n_pages");
      pageInfo.textContent = `page ${page + 1} of ${pages}`;
      prev.disabled = page <= 0;
      next.disabled = page >= pages - 1;
      error.textContent = model.get("error");
      error.hidden = !model.get("error");
      draw();
    }

    const set = (name, value) => {
      model.set(name, value);
      model.save_changes();
    };
    layerSelect.addEventListener("change", () => set("layer", layerSelect.value));
    viewSelect.addEventListener("change", () => set("show", viewSelect.value));
    prev.addEventListener("click", () => set("page", model.get("page") - 1));
    next.addEventListener("click", () => set("page", model.get("page") + 1));
    for (const name of ["layers", "layer", "show", "page", "n_pages", "tiles", "meta", "error"]) {
      model.on(`change:${name}`, sync);
    }
    sync();
  },
};
