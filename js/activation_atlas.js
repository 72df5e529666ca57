// The ActivationAtlas view: a grid x grid map of a layer's activations, each non-empty cell drawn as its feature
// visualization (an RGB icon Python streams as one uint8 buffer), sized by how many activation vectors fell in it
// (grey until its icon arrives). Hovering a cell names its count, the class it most supports and shows a strip of
// the images behind it (thumbnails, one uint8 buffer); +/- buttons or Ctrl + wheel zoom; Compute and Cancel drive
// the worker. Class names only reach the page through textContent.
import {
  baseStyle, commitOnEnter, errorBox, h, PROGRESS_TRAITS, progressBar, react, showsText, warningBox,
} from "./dom.js";
import { rgbaOf } from "./images.js";
import { bytesOf } from "./tiles.js";

const CELL_PX = 36; // a cell's side at zoom 1
const MIN_SIDE = 0.3; // the smallest icon, as a share of its cell (a cell of one vector)
const ZOOM_MIN = 0.25;
const ZOOM_MAX = 8;
const THUMB_PX = 48; // a thumbnail's side in the hover strip

const STYLE = baseStyle("cnnw-atlas") + `
.cnnw-atlas { display: flex; flex-direction: column; gap: 6px; padding: 4px 0; min-width: 0; }
.cnnw-atlas .cnnw-atlas-row { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 12px; }
.cnnw-atlas input[type="number"] { width: 4.5em; }
.cnnw-atlas button { padding: 1px 10px; }
.cnnw-atlas button:disabled { opacity: 0.4; }
.cnnw-atlas .cnnw-atlas-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-atlas .cnnw-progress { width: 140px; }
.cnnw-atlas .cnnw-atlas-wrap { position: relative; overflow: auto; max-height: 720px; max-width: 100%; }
.cnnw-atlas canvas.cnnw-atlas-canvas { display: block; cursor: crosshair; image-rendering: auto; }
.cnnw-atlas .cnnw-atlas-hover { position: absolute; z-index: 1; pointer-events: none; padding: 4px 6px;
  display: flex; flex-direction: column; gap: 4px; background: var(--jp-layout-color0, #fff);
  border: 1px solid var(--jp-border-color1, #bdbdbd); box-shadow: 0 1px 4px rgba(0, 0, 0, 0.25); }
.cnnw-atlas .cnnw-atlas-hover-text { white-space: nowrap; font-variant-numeric: tabular-nums; }
.cnnw-atlas canvas.cnnw-atlas-strip { display: block; image-rendering: pixelated; }
`;

/** A canvas holding an RGB image of `size` x `size` from a uint8 buffer of such images (image i). */
function imageCanvas(bytes, size, i) {
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const data = new ImageData(rgbaOf(bytes, { n: Math.floor(bytes.length / (size * size * 3)), size }, i), size, size);
  canvas.getContext("2d").putImageData(data, 0, 0);
  return canvas;
}

/** The side of a cell's icon as a share of the cell: the square root of its count over the largest count. */
export function iconShare(count, maxCount) {
  if (!(maxCount > 0) || !(count > 0)) return 0;
  return Math.max(MIN_SIDE, Math.min(1, Math.sqrt(count / maxCount)));
}

/** "count 12 · circle (75% of its vectors' labels)" for a cell; `names` the class names. */
export function cellText(meta, i, names) {
  const count = meta.count[i];
  const label = meta.label[i];
  const source = meta.class_source === "labels" ? "labels" : "predicted classes";
  const cls = label >= 0 ? `${names[label] ?? label} (${Math.round(100 * meta.support[i])}% of its ${source})`
    : "no class";
  const blank = meta.renderable && meta.renderable[i] === false ? " · every activation here is zero: no icon" : "";
  return `count ${count} · ${cls}${blank}`;
}

export default {
  render({ model, el }) {
    const gridInput = h("input", { class: "cnnw-atlas-grid", type: "number", min: 2, max: 256, step: 1 });
    const zoomOut = h("button", { class: "cnnw-atlas-zoom-out", type: "button", text: "−", title: "zoom out" });
    const zoomIn = h("button", { class: "cnnw-atlas-zoom-in", type: "button", text: "+", title: "zoom in" });
    const zoomText = h("span", { class: "cnnw-atlas-zoom cnnw-atlas-muted" });
    const compute = h("button", { class: "cnnw-atlas-compute", type: "button", text: "Compute" });
    const cancel = h("button", { class: "cnnw-atlas-cancel", type: "button", text: "Cancel" });
    const [progress, drawProgress] = progressBar(model); // {stage, done, total}: done / total, 0 while total is None
    const status = h("span", { class: "cnnw-atlas-status cnnw-atlas-muted", "aria-live": "polite" });
    const info = h("div", { class: "cnnw-atlas-info cnnw-atlas-muted" });
    const [error, showError] = errorBox(model);
    const [warning, drawWarning] = warningBox(model);
    const canvas = h("canvas", { class: "cnnw-atlas-canvas", width: 0, height: 0 });
    const ctx = canvas.getContext("2d");
    const hoverText = h("div", { class: "cnnw-atlas-hover-text" });
    const strip = h("canvas", { class: "cnnw-atlas-strip", width: 0, height: 0 });
    const hover = h("div", { class: "cnnw-atlas-hover", hidden: true }, [hoverText, strip]);
    const wrap = h("div", { class: "cnnw-atlas-wrap" }, [canvas, hover]);
    el.replaceChildren(h("div", { class: "cnnw-atlas" }, [
      h("style", { text: STYLE }),
      h("div", { class: "cnnw-atlas-row" }, [
        h("label", {}, ["Grid", gridInput]),
        h("span", {}, ["Zoom ", zoomOut, " ", zoomText, " ", zoomIn]),
        compute, cancel, progress, status,
      ]),
      error,
      warning,
      info,
      wrap,
    ]));

    let icons = []; // a canvas per cell with an icon (null until rendered)
    let byCell = new Map(); // row * grid + col -> cell index
    let hovered = -1;
    let pointer = null;

    function save(values) {
      for (const [name, value] of Object.entries(values)) model.set(name, value);
      model.save_changes();
    }

    function decode() {
      const meta = model.get("cells") ?? {};
      const bytes = bytesOf(model.get("icons"));
      const size = meta.icon ?? 0;
      const m = meta.m ?? 0;
      icons = [];
      byCell = new Map();
      for (let i = 0; i < m; i++) {
        byCell.set(meta.row[i] * meta.grid + meta.col[i], i);
        const ok = size > 0 && meta.rendered[i] && bytes.length >= (i + 1) * size * size * 3;
        icons.push(ok ? imageCanvas(bytes, size, i) : null);
      }
      draw();
    }

    function cellPx() {
      return CELL_PX * (model.get("zoom") ?? 1);
    }

    function draw() {
      const meta = model.get("cells") ?? {};
      const grid = meta.grid ?? model.get("grid");
      const m = meta.m ?? 0;
      const px = cellPx();
      const side = Math.max(1, Math.round(grid * px));
      canvas.width = canvas.height = side;
      ctx.fillStyle = "#fafafa";
      ctx.fillRect(0, 0, side, side);
      ctx.imageSmoothingEnabled = true;
      let drawn = 0;
      let blank = 0; // cells whose activations are all zero: no icon will ever come
      for (let i = 0; i < m; i++) {
        const share = iconShare(meta.count[i], meta.max_count);
        const s = share * px;
        const x = meta.col[i] * px + (px - s) / 2;
        const y = meta.row[i] * px + (px - s) / 2;
        if (icons[i]) {
          ctx.drawImage(icons[i], x, y, s, s);
          drawn += 1;
        } else if (meta.renderable && meta.renderable[i] === false) {
          // nothing will come: an outline, not the grey of an icon still to render
          ctx.strokeStyle = "#9e9e9e";
          ctx.strokeRect(x + 0.5, y + 0.5, Math.max(0, s - 1), Math.max(0, s - 1));
          blank += 1;
        } else {
          ctx.fillStyle = "#bdbdbd";
          ctx.fillRect(x, y, s, s);
        }
      }
      Object.assign(canvas.dataset, { cells: String(m), rendered: String(drawn), blank: String(blank),
        grid: String(grid) });
      const names = model.get("class_names") ?? [];
      info.textContent = m ? `${m} cells of ${grid}×${grid} from ${meta.samples} activation vectors · layer ` +
        `${model.get("layer")} · layout ${model.get("layout_method") || "…"} · classes from ` +
        `${meta.class_source === "labels" ? "labels" : "predictions"} (${names.length})` : "";
      if (pointer) showHover(pointer);
    }

    function syncControls() {
      gridInput.value = String(model.get("grid"));
      zoomText.textContent = `${Math.round(100 * model.get("zoom"))}%`;
      zoomOut.disabled = model.get("zoom") <= ZOOM_MIN;
      zoomIn.disabled = model.get("zoom") >= ZOOM_MAX;
      const running = model.get("running");
      cancel.disabled = !running;
      compute.disabled = running;
    }

    function showHover(where) {
      const meta = model.get("cells") ?? {};
      const px = cellPx();
      const col = Math.floor(where.x / px);
      const row = Math.floor(where.y / px);
      const i = byCell.get(row * meta.grid + col);
      if (i === undefined || col < 0 || row < 0 || col >= meta.grid || row >= meta.grid) {
        hover.hidden = true;
        hovered = -1;
        return;
      }
      hoverText.textContent = cellText(meta, i, model.get("class_names") ?? []);
      if (hovered !== i) drawStrip(meta, i);
      hovered = i;
      hover.hidden = false;
      const right = wrap.scrollLeft + wrap.clientWidth;
      const left = where.x + 14 + hover.offsetWidth > right ? where.x - 8 - hover.offsetWidth : where.x + 14;
      hover.style.left = `${Math.max(0, left)}px`;
      hover.style.top = `${where.y + 14}px`;
    }

    function drawStrip(meta, i) {
      const t = meta.thumb ?? 0;
      const ids = meta.strip?.[i] ?? [];
      const bytes = bytesOf(model.get("thumbs"));
      if (!t || !ids.length) {
        strip.width = strip.height = 0;
        strip.dataset.images = "0";
        return;
      }
      strip.width = ids.length * (THUMB_PX + 2) - 2;
      strip.height = THUMB_PX;
      const sctx = strip.getContext("2d");
      ids.forEach((k, j) => {
        if ((k + 1) * t * t * 3 <= bytes.length) sctx.drawImage(imageCanvas(bytes, t, k), j * (THUMB_PX + 2), 0,
          THUMB_PX, THUMB_PX);
      });
      strip.dataset.images = String(ids.length);
      strip.title = `images ${(meta.images?.[i] ?? []).join(", ")}`;
    }

    function onMove(event) {
      const box = canvas.getBoundingClientRect();
      pointer = { x: ((event.clientX - box.left) * canvas.width) / Math.max(1, box.width),
        y: ((event.clientY - box.top) * canvas.height) / Math.max(1, box.height) };
      showHover(pointer);
    }

    function setZoom(value) {
      save({ zoom: Math.min(ZOOM_MAX, Math.max(ZOOM_MIN, Math.round(value * 100) / 100)) });
    }

    zoomIn.addEventListener("click", () => setZoom(model.get("zoom") * 1.25));
    zoomOut.addEventListener("click", () => setZoom(model.get("zoom") / 1.25));
    canvas.addEventListener("wheel", (event) => {
      if (!event.ctrlKey && !event.metaKey) return; // a plain wheel scrolls the notebook
      event.preventDefault();
      setZoom(model.get("zoom") * (event.deltaY < 0 ? 1.25 : 0.8));
    }, { passive: false });
    canvas.addEventListener("pointermove", onMove);
    canvas.addEventListener("pointerleave", () => {
      hover.hidden = true;
      hovered = -1;
      pointer = null;
    });
    commitOnEnter(gridInput, () => {
      const value = Number(gridInput.value);
      save({ grid: Number.isInteger(value) ? value : gridInput.value });
    });
    compute.addEventListener("click", () => model.send({ action: "compute" }));
    cancel.addEventListener("click", () => model.send({ action: "cancel" }));
    const { dispose } = react(model, [
      [syncControls, ["grid", "zoom", "running"]],
      [drawProgress, PROGRESS_TRAITS],
      [showsText(model, "status", status), ["status"]],
      [showError, ["error"]],
      [drawWarning, ["warning"]],
      [decode, ["cells", "icons"]],
      [draw, ["zoom", "layout_method", "class_names"]],
    ]);
    return () => dispose();
  },
};
