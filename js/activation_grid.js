// The ActivationGrid view: every channel of a layer as a grid of tiles, the clicked channel enlarged beside the
// input image, and a strip of one thumbnail per layer. It draws the buffers Python sends (docs/wire-format.md) and
// writes back what the user picks; colour maps, normalization and overlay are applied here, with no kernel trip.
// Model text (layer names) only ever reaches the page through textContent, option text and attributes.
import {
  baseStyle, commitOnEnter, errorBox, h, mountWidget, pictureImg, react, setOptions, showsText, warningBox,
} from "./dom.js";
import { colormap, COLORMAPS } from "./colormaps.js";
import { colorBar } from "./colorbar.js";
import {
  bytesOf, floatsOf, gridLayout, indexLut, layerRange, paintIndexed, paintRGB, stackComplete, tileAt, tileScale,
  tileView, trueValue,
} from "./tiles.js";

const GAP = 4; // px between tiles; wide enough to hold the 2 px selection outline of each neighbour
const PAD = 2; // px around the grid, so an outline on the edge stays visible
const MIN_TILE_PX = 48;
const MIN_VECTOR_PX = 192; // a vector layer is one tile of all its units: draw it large enough to point at one
const FOCUS_PX = 192; // the enlarged image is zoomed to about this size
const FOCUS_SENT_PX = 256; // activation_grid.py FOCUS_PX: the kernel sends a map of at most this size a side as is
const FALLBACK_WIDTH = 640; // before the view is attached and has a width of its own
const OUTLINE = "#ff5722"; // canvas strokes cannot read CSS variables; this orange stands out on every colour map
const IDENTITY = indexLut(0, 1, 0, 1);

const NORMALIZATIONS = [["channel", "per channel"], ["layer", "per layer"]];
const SORTS = [["index", "channel index"], ["mean", "mean activation"]];

const STYLE = baseStyle("cnnw-grid") + `
.cnnw-grid { display: flex; flex-direction: column; gap: 8px; padding: 4px 0; }
.cnnw-grid .cnnw-toolbar, .cnnw-grid .cnnw-pager { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
/* width 100% (of a label sized by its content) lets the select shrink below its longest option: a long layer name
   ("block4_dropout (16x16x128)") must not make the view wider than a narrow sidebar */
.cnnw-grid .cnnw-layer-select { width: 100%; max-width: 22em; min-width: 0; }
.cnnw-grid input[type="number"] { width: 4.5em; }
.cnnw-grid input[type="range"] { width: 6em; }
.cnnw-grid button:disabled { opacity: 0.4; }
.cnnw-grid .cnnw-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-grid canvas, .cnnw-grid img { image-rendering: pixelated; }
.cnnw-grid-outer { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 8px; min-width: 0; }
.cnnw-grid-outer > .cnnw-grid { flex: 1 1 480px; min-width: 0; }
.cnnw-grid-outer > .cnnw-grid-chart { flex: 0 1 440px; min-width: 240px; }
.cnnw-grid .cnnw-busy { width: 6em; height: 6px; }
.cnnw-grid .cnnw-main { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 12px; }
.cnnw-grid .cnnw-grid-side { display: flex; flex-direction: column; gap: 4px; flex: 1 1 360px; min-width: 0; }
.cnnw-grid .cnnw-grid-wrap { position: relative; min-width: 0; }
.cnnw-grid .cnnw-grid-canvas { display: block; max-width: 100%; cursor: crosshair; }
.cnnw-grid .cnnw-hover { position: absolute; z-index: 1; pointer-events: none; padding: 2px 6px; white-space: nowrap;
  background: var(--jp-layout-color0, #fff); border: 1px solid var(--jp-border-color1, #bdbdbd);
  box-shadow: 0 1px 4px rgba(0, 0, 0, 0.25); font-variant-numeric: tabular-nums; }
/* the panel keeps the width of image + enlarged channel from the start, so the first click does not re-flow the grid */
.cnnw-grid .cnnw-focus { flex: 0 1 392px; min-width: 0; max-width: 100%; display: flex; flex-direction: column;
  gap: 4px; }
.cnnw-grid .cnnw-focus-canvas { max-width: 100%; }
.cnnw-grid .cnnw-predictions { margin: 0; padding-left: 1.6em; max-width: 392px; }
.cnnw-grid .cnnw-predictions li span + span { margin-left: 0.6em; font-variant-numeric: tabular-nums; }
/* contain: the strip scrolls inside the width the view is given; its row of thumbnails must not widen the view */
.cnnw-grid .cnnw-strip { display: flex; gap: 4px; overflow-x: auto; padding-bottom: 4px; contain: inline-size; }
.cnnw-grid .cnnw-strip-item { flex: 0 0 auto; display: flex; flex-direction: column; align-items: center; gap: 2px;
  width: 88px; padding: 3px; border: 2px solid transparent; background: none; cursor: pointer; }
.cnnw-grid .cnnw-strip-item.cnnw-current { border-color: var(--jp-brand-color1, #1976d2); }
.cnnw-grid .cnnw-strip-item img { width: 48px; height: 48px; }
.cnnw-grid .cnnw-strip-item span { max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  font-size: var(--jp-ui-font-size0, 11px); }
`;

/** "32×32×32" from [32, 32, 32]; unknown dimensions as "?". */
function shapeText(shape) {
  return Array.isArray(shape) ? shape.map((d) => d ?? "?").join("×") : "";
}

/** A layer name short enough for a strip label, keeping both ends ("block…6_expand_relu" style): layer names
 * differ at the start (block number) and at the end (conv, bn, relu), rarely in the middle. */
function shortName(path, max = 12) {
  const name = path.split("/").pop();
  if (name.length <= max) return name;
  const tail = Math.ceil((max - 1) / 2);
  return `${name.slice(0, max - 1 - tail)}…${name.slice(-tail)}`;
}

/** A short, readable number: 4 significant digits, exponent form for very small or large magnitudes. */
function formatValue(v) {
  const a = Math.abs(v);
  if (!Number.isFinite(v) || a === 0) return String(v);
  return a < 1e-3 || a >= 1e5 ? v.toExponential(2) : String(Number(v.toPrecision(4)));
}

export default {
  render({ model, el }) {
    // ---- DOM ----
    const layerSelect = h("select", { class: "cnnw-layer-select" });
    const imageInput = h("input", { class: "cnnw-image-input", type: "number", min: 0, step: 1 });
    const imageCount = h("span", { class: "cnnw-muted" });
    const cmapSelect = h("select", { class: "cnnw-cmap-select" });
    const normSelect = h("select", { class: "cnnw-norm-select" });
    const sortSelect = h("select", { class: "cnnw-sort-select" });
    const overlayBox = h("input", { class: "cnnw-overlay", type: "checkbox" });
    const opacity = h("input", { class: "cnnw-opacity", type: "range", min: 0, max: 1, step: 0.05, title: "opacity" });
    setOptions(cmapSelect, COLORMAPS.map((name) => [name, name]));
    setOptions(normSelect, NORMALIZATIONS);
    setOptions(sortSelect, SORTS);

    const prev = h("button", { class: "cnnw-prev", type: "button", text: "‹ prev" });
    const next = h("button", { class: "cnnw-next", type: "button", text: "next ›" });
    const pageInfo = h("span", { class: "cnnw-page-info" });
    const status = h("span", { class: "cnnw-status cnnw-muted", "aria-live": "polite" });
    const busy = h("progress", { class: "cnnw-busy", hidden: true, "aria-label": "computing" });
    const [error, showError] = errorBox(model);
    const [warning, showWarning] = warningBox(model);
    // A model whose predictions say nothing on these images (uniform, or the same whatever the image): decided in
    // Python (core uncertainty.prediction_warning), shown as text.
    const predictionWarning = h("div", { class: "cnnw-warning cnnw-prediction-warning", role: "status", hidden: true });
    const showPredictionWarning = showsText(model, "prediction_warning", predictionWarning, true);

    const canvas = h("canvas", { class: "cnnw-grid-canvas", width: 0, height: 0 });
    const ctx = canvas.getContext("2d");
    const hover = h("div", { class: "cnnw-hover", hidden: true });
    const gridWrap = h("div", { class: "cnnw-grid-wrap" }, [canvas, hover]);
    const focusTitle = h("div", { class: "cnnw-focus-title cnnw-muted" });
    const focusCanvas = h("canvas", { class: "cnnw-focus-canvas", width: 0, height: 0 });
    const gridBar = colorBar("cnnw-grid-bar"); // what a tile's colours stand for
    const focusBar = colorBar("cnnw-focus-bar"); // the enlarged channel's colours, in activation values
    const predictions = h("ol", { class: "cnnw-predictions", "aria-label": "top classes for this image" });
    const strip = h("div", { class: "cnnw-strip", role: "group", "aria-label": "activations by depth" });

    const root = h("div", { class: "cnnw-grid" }, [
      h("style", { text: STYLE }),
      h("div", { class: "cnnw-toolbar" }, [
        h("label", {}, ["Layer", layerSelect]),
        h("label", {}, ["Image", imageInput, imageCount]),
        h("label", {}, ["Colours", cmapSelect]),
        h("label", {}, ["Scale", normSelect]),
        h("label", {}, ["Sort by", sortSelect]),
        h("label", {}, [overlayBox, "Overlay", opacity]),
      ]),
      h("div", { class: "cnnw-pager" }, [prev, pageInfo, next, busy, status]),
      error,
      warning,
      predictionWarning,
      h("div", { class: "cnnw-main" }, [
        h("div", { class: "cnnw-grid-side" }, [gridWrap, gridBar.node]),
        h("div", { class: "cnnw-focus" }, [focusTitle, focusCanvas, focusBar.node, predictions]),
      ]),
      h("div", { class: "cnnw-muted", text: "Depth: one thumbnail per layer, input to output; click one to open it" }),
      strip,
    ]);
    const chartBox = h("div", { class: "cnnw-grid-chart" });
    el.replaceChildren(h("div", { class: "cnnw-grid-outer" }, [root, chartBox]));
    const unmountChart = mountWidget(model, "chart", chartBox);

    // ---- state read from traits ----
    let cmap = { name: null, table: null };
    /** The colour table of the current `colormap` trait, rebuilt only when it changes. */
    function table() {
      const name = model.get("colormap");
      if (name !== cmap.name) cmap = { name, table: colormap(COLORMAPS.includes(name) ? name : "viridis") };
      return cmap.table;
    }

    /** The page as drawn, kept for hit-testing and hover values. */
    let grid = null;
    /** The width the grid was last laid out for; a resize to another width lays it out again. */
    let laidOutFor = 0;

    /** Write a user's choice back to Python. */
    function save(name, value) {
      model.set(name, value);
      model.save_changes();
    }

    // ---- drawing ----
    function drawGrid() {
      const meta = model.get("tile_meta") ?? {};
      const bytes = bytesOf(model.get("tiles"));
      const ranges = floatsOf(model.get("tile_ranges"));
      if (!meta.k) {
        grid = null;
        gridBar.hide();
        hover.hidden = true;
        canvas.width = canvas.height = 0;
        canvas.dataset.channels = "";
        return;
      }
      // A new page's bytes, ranges and meta can arrive in separate messages: keep the last page until all are here.
      if (!stackComplete(bytes, ranges, meta)) return;
      const scale = tileScale(meta.h, meta.w, meta.vector ? MIN_VECTOR_PX : MIN_TILE_PX);
      laidOutFor = gridWrap.clientWidth;
      const layout = gridLayout(meta.k, meta.w * scale, meta.h * scale, (laidOutFor || FALLBACK_WIDTH) - 2 * PAD, GAP);
      canvas.width = layout.width + 2 * PAD;
      canvas.height = layout.height + 2 * PAD;
      const image = ctx.createImageData(canvas.width, canvas.height);
      const [L, H] = layerRange(ranges);
      const perLayer = model.get("normalization") === "layer";
      const colours = table();
      layout.origins.forEach(([x, y], i) => {
        const lo = ranges[2 * i];
        const hi = ranges[2 * i + 1];
        const lut = perLayer ? indexLut(lo, hi, L, H) : indexLut(lo, hi, lo, hi);
        const rect = { x: x + PAD, y: y + PAD, w: layout.tileW, h: layout.tileH };
        paintIndexed(image, rect, { data: tileView(bytes, meta, i), w: meta.w, h: meta.h }, colours, lut);
      });
      ctx.putImageData(image, 0, 0);
      canvas.dataset.channels = meta.channels.join(",");
      grid = { meta, bytes, ranges, layout, scale, image, outlined: -1 };
      drawSelection();
      if (perLayer || meta.vector) {
        gridBar.update({ table: colours, lo: L, hi: H, label: meta.vector ? "unit value" : "activation value, whole page",
          title: "one scale for every tile shown; hover a tile for its values" });
      } else {
        gridBar.update({ table: colours, lo: "min", hi: "max", label: "activation value, each tile on its own range",
          title: "each tile from its own minimum to its own maximum; hover a tile for its values, or choose Scale: " +
            "per layer for one scale" });
      }
      // The pointer may rest on the canvas while another layer, page or image arrives: its hover text follows the
      // new tiles (it kept the old layer's channel, value and position).
      if (lastPointer) onMove(lastPointer);
    }

    /**
     * The selected tile's outline. A click changes only this: the tiles painted last stay, the old outline is
     * covered by the pixels under it and the new one drawn (repainting every tile cost a click 25-40 ms of the
     * page's time in the Explorer, benchmarks/explorer.py).
     */
    function drawSelection() {
      if (!grid) return;
      const { meta, layout, image } = grid;
      if (grid.outlined >= 0) {
        const [x, y] = layout.origins[grid.outlined];
        // the outline's 2-px band around the tile, from the painted image
        ctx.putImageData(image, 0, 0, x + PAD - 2, y + PAD - 2, layout.tileW + 4, layout.tileH + 4);
      }
      const selected = meta.vector ? -1 : meta.channels.indexOf(model.get("selected_channel"));
      if (selected >= 0) {
        const [x, y] = layout.origins[selected];
        ctx.strokeStyle = OUTLINE;
        ctx.lineWidth = 2;
        ctx.strokeRect(x + PAD - 1, y + PAD - 1, layout.tileW + 2, layout.tileH + 2);
      }
      grid.outlined = selected;
      canvas.dataset.selected = String(selected >= 0 ? meta.channels[selected] : -1);
    }

    function drawPager() {
      const meta = model.get("tile_meta") ?? {};
      const shown = meta.k ?? 0;
      const total = meta.n_channels ?? shown;
      const page = meta.page ?? 0;
      const pages = meta.n_pages ?? 1;
      pageInfo.textContent = meta.vector
        ? `${total} units`
        : total > shown
          ? `showing ${shown} of ${total} channels (page ${page + 1}/${pages})`
          : `${total} channels`;
      prev.hidden = next.hidden = pages <= 1;
      prev.disabled = page <= 0;
      next.disabled = page >= pages - 1;
    }

    /**
     * Whether the tiles are the shown layer's maps themselves, as the kernel's enlarged channel is: a map of at most
     * FOCUS_SENT_PX a side is tiled and enlarged at its own size, each quantized over its own range, so a tile at
     * the map's size holds the bytes Python sends for that channel. Checked, not assumed: when the kernel's
     * enlarged channel arrives it must equal its tile byte for byte, with the same range; the check holds for the
     * layer and image selected then (a layer set from Python arrives before its tiles). A channel clicked then is
     * enlarged from its tile at once, exactly (no kernel round trip for the picture).
     */
    let tilesExact = null; // { layer, image } the check passed for
    function checkExact() {
      tilesExact = null;
      const meta = model.get("tile_meta") ?? {};
      const fm = model.get("focus_meta") ?? {};
      const bytes = bytesOf(model.get("tiles"));
      const ranges = floatsOf(model.get("tile_ranges"));
      if (!meta.k || meta.vector || meta.h !== meta.source_h || meta.w !== meta.source_w
        || Math.max(meta.h, meta.w) > FOCUS_SENT_PX || !stackComplete(bytes, ranges, meta)) return;
      const i = meta.channels.indexOf(fm.channel);
      const focus = bytesOf(model.get("focus"));
      if (i < 0 || fm.h !== meta.h || fm.w !== meta.w || focus.length !== meta.h * meta.w
        || fm.lo !== ranges[2 * i] || fm.hi !== ranges[2 * i + 1]) return;
      const tile = tileView(bytes, meta, i);
      for (let j = 0; j < focus.length; j++) if (focus[j] !== tile[j]) return;
      tilesExact = { layer: model.get("layer"), image: model.get("image_index") };
    }
    function tilesAreMaps() {
      return Boolean(tilesExact) && tilesExact.layer === model.get("layer")
        && tilesExact.image === model.get("image_index");
    }
    const EXACT_EVENTS = "change:focus change:focus_meta change:tiles change:tile_meta change:tile_ranges";
    model.on(EXACT_EVENTS, checkExact);
    checkExact();

    /**
     * What to enlarge: the full-resolution map Python sent for the selected channel, or, until it arrives (the
     * kernel is computing it, or stopped, as with a jslinked slider), that channel's own tile from the page: the
     * map itself when the tiles are (checkExact), else a preview (the tile stretched).
     */
    function focusSource() {
      const selected = model.get("selected_channel");
      const fm = model.get("focus_meta") ?? {};
      if (selected < 0) return null;
      if (fm.channel === selected && fm.vector) return { channel: selected, vector: true, lo: fm.lo, hi: fm.hi };
      const focus = bytesOf(model.get("focus"));
      if (fm.channel === selected && fm.h > 0 && fm.w > 0 && focus.length >= fm.h * fm.w) {
        return { channel: selected, data: focus, w: fm.w, h: fm.h, lo: fm.lo, hi: fm.hi, preview: false, exact: true };
      }
      const meta = model.get("tile_meta") ?? {};
      const bytes = bytesOf(model.get("tiles"));
      const ranges = floatsOf(model.get("tile_ranges"));
      if (!meta.k || meta.vector || !stackComplete(bytes, ranges, meta)) return null;
      const i = meta.channels.indexOf(selected);
      if (i < 0) return null;
      return { channel: selected, data: tileView(bytes, meta, i), w: meta.w, h: meta.h, lo: ranges[2 * i],
        hi: ranges[2 * i + 1], preview: true, exact: tilesAreMaps() };
    }

    /** What the enlarged picture was drawn from last; the same again (the kernel's map of a channel already drawn
     * from its tile, found equal to that tile as it arrived) is not drawn again. A new image or page draws it. */
    let focusDrawn = null;
    let focusInputs = 0;
    model.on("change:image change:image_shape change:tiles change:tile_meta change:tile_ranges", bumpFocusInputs);
    function bumpFocusInputs() {
      focusInputs += 1;
    }

    function drawFocus() {
      const source = focusSource();
      const rgb = bytesOf(model.get("image"));
      const [ih, iw] = model.get("image_shape") ?? [];
      const hasImage = ih > 0 && iw > 0 && rgb.length >= ih * iw * 3;
      const hasFocus = Boolean(source && !source.vector);
      focusTitle.textContent = source?.vector
        ? `unit ${source.channel}: ${formatValue(source.lo)}`
        : hasFocus
          ? `channel ${source.channel}: ${formatValue(source.lo)} to ${formatValue(source.hi)}`
          : "click a channel to enlarge it";
      focusCanvas.dataset.channel = source ? String(source.channel) : "";
      focusCanvas.dataset.preview = String(Boolean(source?.preview)); // drawn from the page's tile
      focusCanvas.dataset.exact = String(Boolean(hasFocus && source.exact)); // ... which is the map at full size
      const drawn = JSON.stringify([focusInputs, source && [source.channel, source.w, source.h, source.lo, source.hi,
        Boolean(source.exact), Boolean(source.vector)], model.get("colormap"), model.get("normalization"),
      model.get("overlay"), model.get("overlay_opacity")]);
      if (drawn === focusDrawn && hasFocus && source.exact && tilesAreMaps()) return;
      focusDrawn = drawn;
      const [bh, bw] = hasImage ? [ih, iw] : hasFocus ? [source.h, source.w] : [0, 0];
      if (!hasFocus) focusBar.hide();
      if (!bh) {
        focusCanvas.width = focusCanvas.height = 0;
        return;
      }
      // Whole-pixel zoom for small images keeps them sharp; large ones shrink to fit.
      const fit = FOCUS_PX / Math.max(bh, bw);
      const zoom = fit >= 1 ? Math.floor(fit) : fit;
      const width = Math.max(1, Math.round(bw * zoom));
      const height = Math.max(1, Math.round(bh * zoom));
      const overlay = model.get("overlay") && hasImage && hasFocus;
      const sideBySide = hasImage && hasFocus && !overlay;
      focusCanvas.width = sideBySide ? 2 * width + 2 * GAP : width;
      focusCanvas.height = height;
      const fctx = focusCanvas.getContext("2d");
      const image = fctx.createImageData(focusCanvas.width, focusCanvas.height);
      if (hasImage) paintRGB(image, { x: 0, y: 0, w: width, h: height }, { data: rgb, w: iw, h: ih });
      if (hasFocus) {
        // Under per-layer normalization the enlarged channel shares the page's scale, widened to its own range.
        const [L, H] = layerRange(floatsOf(model.get("tile_ranges")));
        const { lo, hi } = source;
        const perLayer = model.get("normalization") === "layer";
        const lut = perLayer ? indexLut(lo, hi, Math.min(L, lo), Math.max(H, hi)) : indexLut(lo, hi, lo, hi);
        focusBar.update({ table: table(), lo: perLayer ? Math.min(L, lo) : lo, hi: perLayer ? Math.max(H, hi) : hi,
          label: `activation value, channel ${source.channel}` });
        const rect = { x: sideBySide ? width + 2 * GAP : 0, y: 0, w: width, h: height };
        const alpha = overlay ? model.get("overlay_opacity") : 1;
        paintIndexed(image, rect, { data: source.data, w: source.w, h: source.h }, table(), lut, alpha);
      }
      fctx.putImageData(image, 0, 0);
    }

    function drawStrip() {
      const meta = model.get("strip_meta") ?? {};
      const t = meta.t ?? 0;
      const bytes = bytesOf(model.get("strip"));
      const colours = table();
      strip.replaceChildren(...(meta.layers ?? []).map((name, i) => {
        let thumb = h("img", { alt: "" }); // an image, not a canvas: see pictureImg
        if (t > 0 && bytes.length >= (i + 1) * t * t) {
          const image = new ImageData(t, t);
          const source = { data: bytes.subarray(i * t * t, (i + 1) * t * t), w: t, h: t };
          paintIndexed(image, { x: 0, y: 0, w: t, h: t }, source, colours, IDENTITY);
          thumb = pictureImg(image);
        }
        const shape = shapeText(meta.shapes?.[i]);
        return h("button", { class: "cnnw-strip-item", type: "button", title: name, "data-layer": name,
          "aria-label": shape ? `${name} (${shape})` : name }, [thumb, h("span", { text: shortName(name) })]);
      }));
      highlightStrip();
    }

    function highlightStrip() {
      const current = model.get("layer");
      for (const item of strip.children) {
        const on = item.dataset.layer === current;
        item.classList.toggle("cnnw-current", on);
        item.setAttribute("aria-pressed", String(on));
        if (on) scrollStripTo(item);
      }
    }

    /** Bring a strip item into the strip's view, horizontally only (never scroll the notebook itself). */
    function scrollStripTo(item) {
      const offset = item.getBoundingClientRect().left - strip.getBoundingClientRect().left;
      if (offset < 0 || offset + item.offsetWidth > strip.clientWidth) {
        strip.scrollLeft += offset - (strip.clientWidth - item.offsetWidth) / 2;
      }
    }

    function fillLayers() {
      setOptions(layerSelect, (model.get("layers") ?? []).map((l) => [l.name, `${l.name} (${shapeText(l.shape)})`]));
      syncControls();
    }

    function syncControls() {
      const n = model.get("n_images") ?? 0;
      layerSelect.value = model.get("layer");
      imageInput.max = Math.max(0, n - 1);
      imageInput.disabled = n <= 1;
      imageInput.value = model.get("image_index");
      imageCount.textContent = `of ${n}`;
      cmapSelect.value = model.get("colormap");
      normSelect.value = model.get("normalization");
      sortSelect.value = model.get("sort");
      overlayBox.checked = model.get("overlay");
      opacity.value = model.get("overlay_opacity");
      opacity.disabled = !model.get("overlay");
    }

    function showPredictions() {
      const top = model.get("predictions") ?? [];
      predictions.replaceChildren(...top.map(({ label, p }) => h("li", {}, [
        h("span", { text: String(label) }),
        h("span", { class: "cnnw-muted", text: `${(100 * p).toFixed(1)}%` }),
      ])));
      predictions.hidden = top.length === 0;
    }

    const showStatus = showsText(model, "status", status);
    function showRunning() {
      busy.hidden = !model.get("running");
    }

    // ---- pointer ----
    /** The tile and tile pixel under a pointer event, or null. */
    function pointed(event) {
      if (!grid) return null;
      const box = canvas.getBoundingClientRect();
      // The canvas may be shrunk by CSS (max-width); map back to canvas pixels.
      const x = ((event.clientX - box.left) * canvas.width) / box.width - PAD;
      const y = ((event.clientY - box.top) * canvas.height) / box.height - PAD;
      const hit = tileAt(grid.layout, x, y);
      if (!hit) return null;
      const tx = Math.floor(hit.x / grid.scale);
      const ty = Math.floor(hit.y / grid.scale);
      return { index: hit.index, tx, ty, px: event.clientX - box.left, py: event.clientY - box.top };
    }

    let lastPointer = null; // the last pointer event over the canvas, for the hover after a redraw

    function onMove(event) {
      lastPointer = event;
      const at = pointed(event);
      if (!at) {
        hover.hidden = true;
        return;
      }
      const { meta, bytes, ranges } = grid;
      const q = tileView(bytes, meta, at.index)[at.ty * meta.w + at.tx];
      const value = trueValue(ranges[2 * at.index], ranges[2 * at.index + 1], q);
      if (meta.vector) {
        const unit = meta.channels[at.ty * meta.w + at.tx];
        if (unit === undefined) {  // the padding after the last unit
          hover.hidden = true;
          return;
        }
        const name = meta.unit_names?.[at.ty * meta.w + at.tx]; // the output layer: one unit per class
        showHover(at, name === undefined ? `unit ${unit} · ${formatValue(value)}`
          : `unit ${unit} · ${name} · ${formatValue(value)}`);
        return;
      }
      const H0 = meta.source_h ?? meta.h;
      const W0 = meta.source_w ?? meta.w;
      const where = H0 === meta.h && W0 === meta.w
        ? `x ${at.tx}, y ${at.ty}`
        : `x ${at.tx}, y ${at.ty} of ${meta.w}×${meta.h} (map ${W0}×${H0})`;
      showHover(at, `channel ${meta.channels[at.index]} · ${formatValue(value)} · ${where}`);
    }

    function showHover(at, text) {
      hover.textContent = text;
      hover.hidden = false;
      // Beside the pointer, flipped to its left near the right edge of the grid.
      const left = at.px + 14 + hover.offsetWidth > gridWrap.clientWidth ? at.px - 8 - hover.offsetWidth : at.px + 14;
      hover.style.left = `${Math.max(0, left)}px`;
      hover.style.top = `${at.py + 14}px`;
    }

    function onClick(event) {
      const at = pointed(event);
      if (!at) return;
      const unit = grid.meta.vector ? grid.meta.channels[at.ty * grid.meta.w + at.tx] : grid.meta.channels[at.index];
      if (unit !== undefined) save("selected_channel", unit);
    }

    // ---- controls ----
    layerSelect.addEventListener("change", () => save("layer", layerSelect.value));
    // The typed value goes to Python as typed: out of range, its check refuses it and the error line says the
    // range (clamped here, 99 silently became the last image).
    commitOnEnter(imageInput, () => {
      const value = Math.round(Number(imageInput.value));
      if (imageInput.value !== "" && Number.isFinite(value) && value !== model.get("image_index")) {
        save("image_index", value);
      }
      imageInput.value = model.get("image_index");
    });
    cmapSelect.addEventListener("change", () => save("colormap", cmapSelect.value));
    normSelect.addEventListener("change", () => save("normalization", normSelect.value));
    sortSelect.addEventListener("change", () => save("sort", sortSelect.value));
    overlayBox.addEventListener("change", () => save("overlay", overlayBox.checked));
    // Redraw while dragging; tell Python once, on release.
    opacity.addEventListener("input", () => model.set("overlay_opacity", Number(opacity.value)));
    opacity.addEventListener("change", () => save("overlay_opacity", Number(opacity.value)));
    prev.addEventListener("click", () => save("page", Math.max(0, model.get("page") - 1)));
    next.addEventListener("click", () => save("page", model.get("page") + 1));
    canvas.addEventListener("pointermove", onMove);
    canvas.addEventListener("pointerleave", () => {
      hover.hidden = true;
      lastPointer = null;
    });
    canvas.addEventListener("click", onClick);
    strip.addEventListener("click", (event) => {
      const item = event.target.closest(".cnnw-strip-item");
      if (item) save("layer", item.dataset.layer);
    });

    // ---- trait changes ----
    const reactions = [
      [fillLayers, ["layers"]],
      [syncControls, ["layer", "n_images", "image_index", "colormap", "normalization", "sort", "overlay",
        "overlay_opacity"]],
      [drawGrid, ["tiles", "tile_ranges", "tile_meta", "colormap", "normalization"]],
      [drawSelection, ["selected_channel"]],
      [drawPager, ["tile_meta"]],
      [drawFocus, ["image", "image_shape", "focus", "focus_meta", "selected_channel", "tiles", "tile_meta",
        "tile_ranges", "colormap", "normalization", "overlay", "overlay_opacity"]],
      [drawStrip, ["strip", "strip_meta", "colormap"]],
      [highlightStrip, ["layer"]],
      [showPredictions, ["predictions"]],
      [showError, ["error"]],
      [showWarning, ["warning"]],
      [showPredictionWarning, ["prediction_warning"]],
      [showStatus, ["status"]],
      [showRunning, ["running"]],
    ];
    const { schedule, dispose } = react(model, reactions);

    // The number of columns follows the width the notebook gives the view.
    const resize = new ResizeObserver(() => {
      if (grid && gridWrap.clientWidth !== laidOutFor) schedule(drawGrid);
    });
    resize.observe(gridWrap);

    return () => {
      dispose();
      model.off(EXACT_EVENTS, checkExact);
      model.off("change:image change:image_shape change:tiles change:tile_meta change:tile_ranges", bumpFocusInputs);
      resize.disconnect();
      unmountChart();
    };
  },
};
