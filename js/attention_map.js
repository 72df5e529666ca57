// The AttentionMap view. For a MultiHeadAttention site: the image with the patch grid (click a patch: it becomes
// the query), the attention rollout over the image, and one map per head of where that query looks. For a channel
// gate: one bar per channel (this image's gate) with the mean gate over the images as a tick. For a spatial gate:
// the gate over the image. Python sends maps as uint8 quantized over their own range (the tile stack of
// docs/wire-format.md) and gates as float32; opacity, colour map and normalization are applied here only.
// Model text (layer paths, messages) reaches the page through textContent and option text only.
import { colormap, COLORMAPS } from "./colormaps.js";
import { baseStyle, errorBox, h, PROGRESS_TRAITS, progressBar, react, setOptions, showsText } from "./dom.js";
import { heatLut, scales } from "./heatmaps.js";
import { colorBar } from "./colorbar.js";
import { bytesOf, floatsOf, paintIndexed, paintRGB, stackComplete, tileScale, tileView } from "./tiles.js";

const IMAGE_PX = 256; // the clickable image and the rollout are zoomed by a whole factor to at least this size
const HEAD_PX = 128; // each head's map

const STYLE = baseStyle("cnnw-at", ["select", "button", "input"]) + `
.cnnw-at { display: flex; flex-direction: column; gap: 8px; padding: 4px 0; min-width: 0; }
.cnnw-at .cnnw-at-row { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
.cnnw-at .cnnw-at-layer { max-width: 28em; min-width: 0; }
.cnnw-at button { padding: 1px 10px; }
.cnnw-at button:disabled { opacity: 0.4; }
.cnnw-at .cnnw-at-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-at .cnnw-progress { width: 120px; }
.cnnw-at .cnnw-at-message { padding: 6px 10px; border-left: 3px solid var(--jp-warn-color1, #f57c00);
  background: var(--jp-layout-color2, #eeeeee); }
.cnnw-at .cnnw-at-panels { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.cnnw-at figure { margin: 0; display: flex; flex-direction: column; align-items: center; gap: 2px; max-width: 100%; }
.cnnw-at canvas { image-rendering: pixelated; max-width: 100%; background: var(--jp-layout-color2, #eee); }
.cnnw-at .cnnw-at-query { cursor: crosshair; }
.cnnw-at .cnnw-at-heads { display: flex; flex-wrap: wrap; gap: 8px; }
.cnnw-at figcaption { font-size: var(--jp-ui-font-size0, 11px); max-width: ${IMAGE_PX}px; white-space: normal;
  overflow-wrap: anywhere; text-align: center; }
.cnnw-at .cnnw-at-channel figure { align-items: flex-start; }
.cnnw-at .cnnw-at-channel figcaption { max-width: 60em; text-align: left; }
.cnnw-at .cnnw-at-bars { max-width: 100%; cursor: crosshair; }
.cnnw-at .cnnw-at-bars-hover { font-size: var(--jp-ui-font-size0, 11px); font-variant-numeric: tabular-nums;
  min-height: 1.4em; }
`;

export default {
  render({ model, el }) {
    // ---- DOM ----
    const image = h("select", { class: "cnnw-at-image" });
    const layer = h("select", { class: "cnnw-at-layer" });
    const head = h("select", { class: "cnnw-at-head" });
    const cancelButton = h("button", { class: "cnnw-at-cancel", type: "button", text: "Cancel" });
    const [progress, drawProgress] = progressBar(model); // {done, total, step: what}: done / total
    const status = h("span", { class: "cnnw-at-status cnnw-at-muted", "aria-live": "polite" });
    const fusion = h("select", { class: "cnnw-at-fusion" });
    setOptions(fusion, [["mean", "mean"], ["max", "max"], ["min", "min"]]);
    const discard = h("input", { class: "cnnw-at-discard", type: "range", min: 0, max: 0.99, step: 0.01 });
    const discardText = h("span", { class: "cnnw-at-discard-value cnnw-at-muted" });
    const residual = h("input", { class: "cnnw-at-residual", type: "checkbox" });
    const opacity = h("input", { class: "cnnw-at-opacity", type: "range", min: 0, max: 1, step: 0.05 });
    const cmap = h("select", { class: "cnnw-at-colormap" });
    setOptions(cmap, COLORMAPS.map((c) => [c, c]));
    const normalization = h("select", { class: "cnnw-at-normalization" });
    setOptions(normalization, [["map", "per map"], ["shared", "shared"]]);
    const [error, showError] = errorBox(model);
    const message = h("div", { class: "cnnw-at-message", role: "status", hidden: true });

    const queryCanvas = h("canvas", { class: "cnnw-at-query", title: "click a patch: where does it look?" });
    const queryCaption = h("figcaption", { class: "cnnw-at-query-caption" });
    const rolloutCanvas = h("canvas", { class: "cnnw-at-rollout" });
    const rolloutCaption = h("figcaption", { class: "cnnw-at-rollout-caption" });
    const rolloutBar = colorBar("cnnw-at-rollout-bar");
    const heads = h("div", { class: "cnnw-at-heads" });
    const headsNote = h("div", { class: "cnnw-at-heads-note cnnw-at-muted", hidden: true });
    const mhaPanel = h("div", { class: "cnnw-at-panels cnnw-at-mha", hidden: true }, [
      h("figure", {}, [queryCanvas, queryCaption]),
      h("figure", {}, [rolloutCanvas, rolloutBar.node, rolloutCaption]),
      h("div", {}, [heads, headsNote]),
    ]);
    const barsCanvas = h("canvas", { class: "cnnw-at-bars" });
    const barsCaption = h("figcaption", { class: "cnnw-at-bars-caption" });
    const barsHover = h("div", { class: "cnnw-at-bars-hover cnnw-at-muted", "aria-live": "polite" });
    const channelPanel = h("div", { class: "cnnw-at-panels cnnw-at-channel", hidden: true }, [
      h("figure", {}, [barsCanvas, barsHover, barsCaption])]);
    const spatialCanvas = h("canvas", { class: "cnnw-at-spatial" });
    const spatialCaption = h("figcaption", { class: "cnnw-at-spatial-caption" });
    const spatialBar = colorBar("cnnw-at-spatial-bar");
    const spatialPanel = h("div", { class: "cnnw-at-panels cnnw-at-spatial-panel", hidden: true }, [
      h("figure", {}, [spatialCanvas, spatialBar.node, spatialCaption])]);
    const rolloutControls = h("span", { class: "cnnw-at-rollout-controls cnnw-at-row" }, [
      h("label", {}, ["Head fusion", fusion]), h("label", {}, ["Discard", discard, discardText]),
      h("label", {}, ["Residual", residual])]);

    // drawn by the browser alone, and only for maps: hidden where they change nothing (the bars of a channel gate;
    // normalization across maps: only the heads are several maps)
    const opacityLabel = h("label", { class: "cnnw-at-opacity-label" }, ["Opacity", opacity]);
    const cmapLabel = h("label", { class: "cnnw-at-colormap-label" }, ["Colour map", cmap]);
    const normalizationLabel = h("label", { class: "cnnw-at-normalization-label" }, ["Normalization", normalization]);
    const controls = h("div", { class: "cnnw-at-controls" }, [
      h("div", { class: "cnnw-at-row" }, [
        h("label", {}, ["Image", image]), h("label", {}, ["Layer", layer]), h("label", {}, ["Head", head]),
        cancelButton, progress, status]),
      h("div", { class: "cnnw-at-row" }, [
        rolloutControls, opacityLabel, cmapLabel, normalizationLabel]),
    ]);
    const root = h("div", { class: "cnnw-at" }, [h("style", { text: STYLE }), message, controls, error, mhaPanel,
      channelPanel, spatialPanel]);
    el.replaceChildren(root);

    function save(values) {
      for (const [name, value] of Object.entries(values)) model.set(name, value);
      model.save_changes();
    }

    function site() {
      return (model.get("sites") ?? []).find((s) => s.path === model.get("layer")) ?? null;
    }

    function picture() {
      const [H, W] = model.get("image_shape") ?? [0, 0];
      const data = bytesOf(model.get("image"));
      return data.length >= H * W * 3 ? { data, w: W, h: H } : null;
    }

    function sized(canvas, h0, w0, px) {
      const zoom = tileScale(h0, w0, px);
      if (canvas.width !== w0 * zoom || canvas.height !== h0 * zoom) {
        canvas.width = w0 * zoom;
        canvas.height = h0 * zoom;
      }
      return { x: 0, y: 0, w: canvas.width, h: canvas.height };
    }

    /** The image, and over it the maps of a uint8 stack (tile i) with the view's colour map and opacity. */
    function paint(canvas, px, stack, i, scale, bar = null, label = "") {
      const pic = picture();
      if (!pic) return;
      const rect = sized(canvas, pic.h, pic.w, px);
      const ctx = canvas.getContext("2d");
      const out = ctx.createImageData(rect.w, rect.h);
      paintRGB(out, rect, pic);
      if (stack) {
        const lut = heatLut(stack.ranges[2 * i], stack.ranges[2 * i + 1], "positive", scale);
        paintIndexed(out, rect, { data: tileView(stack.bytes, stack.meta, i), w: stack.meta.w, h: stack.meta.h },
          colormap(model.get("colormap")), lut, model.get("opacity"));
        bar?.update({ table: colormap(model.get("colormap")), lo: 0, hi: scale, label });
      } else {
        bar?.hide();
      }
      ctx.putImageData(out, 0, 0);
    }

    function stackOf(bytesTrait, rangesTrait, metaTrait) {
      const meta = model.get(metaTrait) ?? {};
      const bytes = bytesOf(model.get(bytesTrait));
      const ranges = floatsOf(model.get(rangesTrait));
      if (!meta.k || !stackComplete(bytes, ranges, meta)) return null;
      return { meta, bytes, ranges };
    }

    // ---- drawing ----
    function drawPanels() {
      const s = site();
      const kind = s?.kind ?? "";
      mhaPanel.hidden = kind !== "mha";
      channelPanel.hidden = kind !== "channel_gate";
      spatialPanel.hidden = kind !== "spatial_gate";
      rolloutControls.hidden = kind !== "mha";
      opacityLabel.hidden = cmapLabel.hidden = kind === "channel_gate";
      normalizationLabel.hidden = kind !== "mha";
      controls.hidden = !(model.get("sites") ?? []).length;
      root.dataset.kind = kind;
    }

    function drawQuery() {
      const s = site();
      if (!s || s.kind !== "mha") return;
      paint(queryCanvas, IMAGE_PX, null, 0, 0);
      const q = model.get("query");
      const grid = s.queries;
      const ctx = queryCanvas.getContext("2d");
      if (grid) {
        const [extra, gh, gw] = grid;
        const cw = queryCanvas.width / gw;
        const ch = queryCanvas.height / gh;
        ctx.strokeStyle = "rgba(255,255,255,0.35)";
        ctx.lineWidth = 1;
        for (let i = 1; i < gw; i++) { ctx.beginPath(); ctx.moveTo(i * cw, 0); ctx.lineTo(i * cw, queryCanvas.height); ctx.stroke(); }
        for (let j = 1; j < gh; j++) { ctx.beginPath(); ctx.moveTo(0, j * ch); ctx.lineTo(queryCanvas.width, j * ch); ctx.stroke(); }
        const p = q - extra;
        if (p >= 0) {
          ctx.strokeStyle = "#00e5ff";
          ctx.lineWidth = 3;
          ctx.strokeRect((p % gw) * cw + 1.5, Math.floor(p / gw) * ch + 1.5, cw - 3, ch - 3);
          queryCaption.textContent = `query: patch ${p} (row ${Math.floor(p / gw)}, column ${p % gw}) — click another`;
        } else {
          queryCaption.textContent = "query: the class token — click a patch";
        }
      } else {
        queryCaption.textContent = `query token ${q}: this layer's queries are not image patches`;
      }
      queryCanvas.dataset.query = String(q);
    }

    function drawRollout() {
      const s = site();
      if (!s || s.kind !== "mha") return;
      const stack = stackOf("rollout_bytes", "rollout_ranges", "rollout_meta");
      const meta = model.get("rollout_meta") ?? {};
      if (!stack) {
        paint(rolloutCanvas, IMAGE_PX, null, 0, 0, rolloutBar);
        rolloutCaption.textContent = meta.note || "rollout: computing…";
        return;
      }
      const [scale] = scales(stack.ranges, [true], "positive", "map");
      paint(rolloutCanvas, IMAGE_PX, stack, 0, scale, rolloutBar, "rollout attention");
      rolloutCaption.textContent = `rollout · ${meta.head_fusion} over heads · discard ${Math.round(100 *
        meta.discard_ratio)}%${meta.residual ? "" : " · no residual"}`;
      rolloutCanvas.dataset.fusion = String(meta.head_fusion);
    }

    let headFigures = [];
    let headKey = "";
    function drawHeads() {
      const s = site();
      if (!s || s.kind !== "mha") return;
      const meta = model.get("heads_meta") ?? {};
      headsNote.hidden = !meta.note;
      headsNote.textContent = meta.note ?? "";
      const stack = stackOf("head_bytes", "head_ranges", "heads_meta");
      if (!stack || meta.layer !== s.path) {
        heads.replaceChildren();
        headFigures = [];
        headKey = "";
        return;
      }
      const key = `${meta.layer}/${meta.k}/${(meta.labels ?? []).join("|")}`;
      if (key !== headKey) {
        headKey = key;
        headFigures = (meta.labels ?? []).map((label) => {
          const canvas = h("canvas", { class: "cnnw-at-head-map" });
          const caption = h("figcaption", { text: label });
          const bar = colorBar("cnnw-at-head-bar");
          return { canvas, bar, figure: h("figure", { class: "cnnw-at-head-figure" }, [canvas, bar.node, caption]) };
        });
        heads.replaceChildren(...headFigures.map((f) => f.figure));
      }
      const done = headFigures.map(() => true);
      const sc = scales(stack.ranges, done, "positive", model.get("normalization"));
      headFigures.forEach((f, i) => paint(f.canvas, HEAD_PX, stack, i, sc[i], f.bar, "attention weight"));
      heads.dataset.query = String(meta.query);
      heads.dataset.image = String(meta.image_index);
      heads.dataset.signature = Array.from(stack.bytes.subarray(0, 64)).join(",");
    }

    function drawGates() {
      const s = site();
      const meta = model.get("gate_meta") ?? {};
      if (!s || meta.layer !== s.path) return;
      if (s.kind === "channel_gate") {
        drawBars(meta);
      } else if (s.kind === "spatial_gate") {
        const stack = stackOf("gate_bytes", "gate_ranges", "gate_meta");
        if (!stack) return;
        const [scale] = scales(stack.ranges, [true], "positive", "map");
        paint(spatialCanvas, IMAGE_PX, { ...stack, meta: { ...stack.meta, k: 1 } }, 0, scale, spatialBar, "gate value");
        spatialCaption.textContent = `spatial gate ${meta.h}×${meta.w} over the image`;
      }
    }

    // The channel-gate bars: a value axis on the left (gate values, 0 to at least 1), one bar per channel, the
    // mean gate over the images as a black tick; hovering a bar reads its numbers out under the chart.
    const BAR_AXIS = 34; // px left of the bars for the value axis
    let bars = null; // what the hover reads: {values, mean, layer, left, bw, c}
    function drawBars(meta) {
      const values = floatsOf(model.get("gate_values"));
      const mean = floatsOf(model.get("gate_mean"));
      const c = values.length;
      const plot = Math.max(240, Math.min(900, c * 4));
      const width = BAR_AXIS + plot + 4;
      const height = 180;
      const top0 = 10;
      const bottom = height - 6;
      barsCanvas.width = width;
      barsCanvas.height = height;
      const ctx = barsCanvas.getContext("2d");
      ctx.clearRect(0, 0, width, height);
      const top = Math.max(1, ...values, ...mean);
      const y = (v) => bottom - (bottom - top0) * (v / top);
      const bw = plot / Math.max(c, 1);
      ctx.font = "10px sans-serif";
      ctx.textAlign = "right";
      ctx.textBaseline = "middle";
      const step = top <= 1 ? 0.25 : top <= 2 ? 0.5 : Math.pow(10, Math.floor(Math.log10(top / 2)));
      const ticks = [];
      for (let v = 0; v <= top + 1e-9; v += step) {
        ticks.push(Number(v.toFixed(2)));
        ctx.fillStyle = "#e0e0e0";
        ctx.fillRect(BAR_AXIS, Math.round(y(v)), plot, 1);
        ctx.fillStyle = "#616161";
        ctx.fillText(String(ticks[ticks.length - 1]), BAR_AXIS - 5, y(v));
        ctx.fillRect(BAR_AXIS - 3, Math.round(y(v)), 3, 1);
      }
      ctx.fillRect(BAR_AXIS - 1, top0, 1, bottom - top0);
      for (let i = 0; i < c; i++) {
        const up = mean.length ? values[i] >= mean[i] : true;
        ctx.fillStyle = up ? "#1976d2" : "#ef6c00";
        ctx.fillRect(BAR_AXIS + i * bw, y(values[i]), Math.max(1, bw - 1), bottom - y(values[i]));
        if (mean.length) {
          ctx.fillStyle = "#212121";
          ctx.fillRect(BAR_AXIS + i * bw, y(mean[i]) - 1, Math.max(1, bw - 1), 2);
        }
      }
      bars = { values, mean, layer: meta.layer, left: BAR_AXIS, bw, c };
      barsHover.textContent = "hover a bar: its channel, gate and mean gate";
      barsCaption.textContent = `${c} channel gates of this image (blue: above the mean, orange: below; black `
        + `tick: mean over ${meta.n_images} images)${mean.length ? "" : " — mean: computing…"}`;
      barsCanvas.dataset.channels = String(c);
      barsCanvas.dataset.ticks = ticks.join(",");
    }

    /** The numbers of the bar under the pointer (canvas pixels from CSS pixels: the canvas may be scaled down). */
    function hoverBar(event) {
      if (!bars || !bars.c) return;
      const box = barsCanvas.getBoundingClientRect();
      const x = ((event.clientX - box.left) / box.width) * barsCanvas.width - bars.left;
      const i = Math.floor(x / bars.bw);
      if (x < 0 || i < 0 || i >= bars.c) {
        barsHover.textContent = "hover a bar: its channel, gate and mean gate";
        barsCanvas.title = "";
        return;
      }
      const mean = bars.mean.length ? bars.mean[i].toFixed(3) : "computing…";
      const text = `${bars.layer} · channel ${i} · gate ${bars.values[i].toFixed(3)} · mean gate ${mean}`;
      barsHover.textContent = text;
      barsCanvas.title = text;
      barsCanvas.dataset.hover = String(i);
    }

    function fillImages() {
      const n = model.get("n_images") ?? 1;
      setOptions(image, Array.from({ length: n }, (_, i) => [i, `image ${i}`]));
      image.value = String(model.get("image_index"));
    }

    function fillLayers() {
      setOptions(layer, (model.get("sites") ?? []).map((s) => [s.path, s.label]));
      layer.value = model.get("layer");
    }

    function fillHeads() {
      const s = site();
      const n = s && s.kind === "mha" ? s.shape[0] : 0;
      setOptions(head, [[-1, n ? "all heads" : "—"], ...Array.from({ length: n }, (_, i) => [i, `head ${i}`])]);
      head.value = String(model.get("head"));
      head.disabled = !n;
    }

    function syncControls() {
      image.value = String(model.get("image_index"));
      layer.value = model.get("layer");
      head.value = String(model.get("head"));
      fusion.value = model.get("head_fusion");
      discard.value = String(model.get("discard_ratio"));
      discardText.textContent = `${Math.round(100 * model.get("discard_ratio"))}%`;
      residual.checked = Boolean(model.get("residual"));
      opacity.value = String(model.get("opacity"));
      cmap.value = model.get("colormap");
      normalization.value = model.get("normalization");
    }

    function drawRunning() {
      cancelButton.disabled = !model.get("running");
      root.dataset.running = String(model.get("running"));
    }

    const showStatus = showsText(model, "status", status);
    const showMessage = showsText(model, "message", message, true);

    // ---- controls ----
    image.addEventListener("change", () => save({ image_index: Number(image.value) }));
    layer.addEventListener("change", () => save({ layer: layer.value }));
    head.addEventListener("change", () => save({ head: Number(head.value) }));
    fusion.addEventListener("change", () => save({ head_fusion: fusion.value }));
    discard.addEventListener("input", () => { discardText.textContent = `${Math.round(100 * Number(discard.value))}%`; });
    discard.addEventListener("change", () => save({ discard_ratio: Number(discard.value) }));
    residual.addEventListener("change", () => save({ residual: residual.checked }));
    opacity.addEventListener("input", () => save({ opacity: Number(opacity.value) }));
    cmap.addEventListener("change", () => save({ colormap: cmap.value }));
    normalization.addEventListener("change", () => save({ normalization: normalization.value }));
    cancelButton.addEventListener("click", () => model.send({ action: "cancel" }));
    barsCanvas.addEventListener("mousemove", hoverBar);
    queryCanvas.addEventListener("click", (event) => {
      const s = site();
      if (!s || !s.queries) return;
      const [extra, gh, gw] = s.queries;
      const box = queryCanvas.getBoundingClientRect();
      const col = Math.min(gw - 1, Math.max(0, Math.floor(((event.clientX - box.left) / box.width) * gw)));
      const row = Math.min(gh - 1, Math.max(0, Math.floor(((event.clientY - box.top) / box.height) * gh)));
      save({ query: extra + row * gw + col });
    });

    // ---- trait changes ----
    const reactions = [
      [fillImages, ["n_images"]],
      [fillLayers, ["sites"]],
      [fillHeads, ["sites", "layer"]],
      [syncControls, ["image_index", "layer", "head", "head_fusion", "discard_ratio", "residual", "opacity",
        "colormap", "normalization"]],
      [drawPanels, ["sites", "layer"]],
      [drawQuery, ["image", "query", "layer", "sites"]],
      [drawRollout, ["image", "rollout_bytes", "rollout_ranges", "rollout_meta", "layer", "opacity", "colormap"]],
      [drawHeads, ["image", "head_bytes", "head_ranges", "heads_meta", "layer", "opacity", "colormap",
        "normalization"]],
      [drawGates, ["image", "gate_values", "gate_mean", "gate_bytes", "gate_ranges", "gate_meta", "layer",
        "opacity", "colormap"]],
      [drawProgress, PROGRESS_TRAITS],
      [drawRunning, ["running"]],
      [showError, ["error"]],
      [showStatus, ["status"]],
      [showMessage, ["message"]],
    ];
    const { dispose } = react(model, reactions);
    return () => dispose();
  },
};
