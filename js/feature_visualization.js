// The FeatureVisualization view: the optimized images as they form (one canvas per image, pixels zoomed whole),
// a progress bar, status, the settings as controls, Render and Cancel, a gallery pager and an error box. It draws
// the batch Python streams (uint8 RGB, one buffer: docs/wire-format.md) and writes back what the user picks; the
// optimization itself runs in the kernel. Model text (layer and class names, objective names) only reaches the page
// through textContent, option text and attributes.
import {
  baseStyle, commitOnEnter, errorBox, h, mountWidget, PROGRESS_TRAITS, progressBar, react, setOptions, showsText,
} from "./dom.js";
import {
  batchComplete, channelCount, pageText, parseIndices, progressFraction, rgbaOf, zoomFor,
} from "./images.js";
import { bytesOf } from "./tiles.js";

const SINGLE_PX = 256; // one image is zoomed to about this size
const BATCH_PX = 160; // several images of one render, a little smaller, so a few fit side by side
const GALLERY_PX = 112; // gallery tiles are smaller still, so a page of 16 fits a notebook's width

const MODES = [["single", "single"], ["gallery", "gallery (every unit)"]];
const OBJECTIVES = [["channel", "channel"], ["neuron", "neuron"], ["class", "class logit"]];
const PARAMS = [["fft", "Fourier"], ["pixel", "pixels"]];
const TRANSFORMS = [["standard", "standard (Lucid)"], ["none", "none"]];

const STYLE = baseStyle("cnnw-fv") + `
.cnnw-fv { display: flex; flex-direction: column; gap: 8px; padding: 4px 0; min-width: 0; }
.cnnw-fv-outer { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 8px; min-width: 0; }
.cnnw-fv-outer > .cnnw-fv { flex: 1 1 420px; }
.cnnw-fv-outer > .cnnw-fv-chart { flex: 0 1 400px; min-width: 240px; }
.cnnw-fv .cnnw-fv-row { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
/* width 100% of a content-sized label: the select may shrink below its longest layer name in a narrow sidebar */
.cnnw-fv .cnnw-fv-layer { width: 100%; max-width: 18em; min-width: 0; }
.cnnw-fv input[type="number"] { width: 5em; }
.cnnw-fv .cnnw-fv-units { width: 8em; }
.cnnw-fv button { padding: 1px 10px; }
.cnnw-fv button:disabled { opacity: 0.4; }
.cnnw-fv .cnnw-fv-render { font-weight: 600; }
.cnnw-fv .cnnw-fv-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-fv .cnnw-fv-images { display: flex; flex-wrap: wrap; gap: 8px; min-height: 40px; }
.cnnw-fv .cnnw-fv-tile { margin: 0; display: flex; flex-direction: column; align-items: center; gap: 2px;
  max-width: 100%; }
.cnnw-fv .cnnw-fv-canvas { image-rendering: pixelated; max-width: 100%; background: var(--jp-layout-color2, #eee); }
.cnnw-fv .cnnw-fv-label { max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  font-size: var(--jp-ui-font-size0, 11px); }
`;

function numberInput(cls, props = {}) {
  return h("input", { class: cls, type: "number", ...props });
}

export default {
  render({ model, el }) {
    // ---- DOM ----
    const mode = h("select", { class: "cnnw-fv-mode" });
    const objective = h("select", { class: "cnnw-fv-objective" });
    const layer = h("select", { class: "cnnw-fv-layer" });
    const unitsLabel = h("span");
    const units = h("input", { class: "cnnw-fv-units", type: "text", spellcheck: false });
    const unitsHint = h("span", { class: "cnnw-fv-muted" });
    const unitsBox = h("label", {}, [unitsLabel, units, unitsHint]);
    const x = numberInput("cnnw-fv-x", { min: -1, step: 1, title: "-1: centre" });
    const y = numberInput("cnnw-fv-y", { min: -1, step: 1, title: "-1: centre" });
    const where = h("span", { class: "cnnw-fv-where" }, [h("label", {}, ["x", x]), " ", h("label", {}, ["y", y])]);
    const param = h("select", { class: "cnnw-fv-param" });
    const decorrelate = h("input", { class: "cnnw-fv-decorrelate", type: "checkbox" });
    const transforms = h("select", { class: "cnnw-fv-transforms" });
    const steps = numberInput("cnnw-fv-steps", { min: 1, step: 1 });
    const size = numberInput("cnnw-fv-size", { min: 8, step: 1 });
    const sizeHint = h("span", { class: "cnnw-fv-muted" });
    const lr = numberInput("cnnw-fv-lr", { min: 0, step: 0.01 });
    const seed = numberInput("cnnw-fv-seed", { step: 1 });
    const pageSize = numberInput("cnnw-fv-page-size", { min: 1, step: 1 });
    const pageSizeBox = h("label", {}, ["Per page", pageSize]);
    setOptions(mode, MODES);
    setOptions(objective, OBJECTIVES);
    setOptions(param, PARAMS);
    setOptions(transforms, TRANSFORMS);

    const renderButton = h("button", { class: "cnnw-fv-render", type: "button", text: "Render" });
    const cancelButton = h("button", { class: "cnnw-fv-cancel", type: "button", text: "Cancel" });
    // the render's fraction counts steps within batches (images.progressFraction), not dom.jobFraction's units
    const [progress, drawBar] = progressBar(model, progressFraction);
    const status = h("span", { class: "cnnw-fv-status cnnw-fv-muted", "aria-live": "polite" });
    const [error, showError] = errorBox(model);
    const title = h("div", { class: "cnnw-fv-title cnnw-fv-muted" });
    const images = h("div", { class: "cnnw-fv-images" });
    const prev = h("button", { class: "cnnw-fv-prev", type: "button", text: "‹ prev" });
    const next = h("button", { class: "cnnw-fv-next", type: "button", text: "next ›" });
    const pageInfo = h("span", { class: "cnnw-fv-page-info" });
    const pager = h("div", { class: "cnnw-fv-row cnnw-fv-pager" }, [prev, pageInfo, next]);

    const root = h("div", { class: "cnnw-fv" }, [
      h("style", { text: STYLE }),
      h("div", { class: "cnnw-fv-row" }, [
        h("label", {}, ["Mode", mode]), h("label", {}, ["Objective", objective]), h("label", {}, ["Layer", layer]),
        unitsBox, where,
      ]),
      h("div", { class: "cnnw-fv-row" }, [
        h("label", {}, ["Image", param]), h("label", {}, [decorrelate, "decorrelate colour"]),
        h("label", {}, ["Transforms", transforms]), h("label", {}, ["Steps", steps]),
        h("label", {}, ["Size", size, sizeHint]), h("label", {}, ["Learning rate", lr]),
        h("label", {}, ["Seed", seed]), pageSizeBox,
      ]),
      h("div", { class: "cnnw-fv-row" }, [renderButton, cancelButton, progress, status]),
      error,
      title,
      images,
      pager,
    ]);
    const chartBox = h("div", { class: "cnnw-fv-chart" });
    el.replaceChildren(h("div", { class: "cnnw-fv-outer" }, [root, chartBox]));
    const unmountChart = mountWidget(model, "chart", chartBox);

    /** Write a user's choice back to Python, several traits in one message. */
    function save(values) {
      for (const [name, value] of Object.entries(values)) model.set(name, value);
      model.save_changes();
    }

    function layerShape(name) {
      return (model.get("layers") ?? []).find((l) => l.name === name)?.shape;
    }

    // ---- drawing ----
    /** Canvases for the batch, reused while the count and size stay the same (each frame only repaints). */
    let tiles = [];
    let tilesKey = "";

    function drawImages() {
      const meta = model.get("images_meta") ?? {};
      const bytes = bytesOf(model.get("pixels"));
      title.textContent = meta.title ?? "";
      if (!meta.n) {
        tiles = [];
        tilesKey = "";
        images.replaceChildren();
        return;
      }
      // Bytes and meta travel in one message, but keep the last frame rather than draw a torn one if not.
      if (!batchComplete(bytes, meta)) return;
      const labels = meta.labels ?? [];
      const gallery = meta.page >= 0;
      const key = `${meta.n}/${meta.size}/${gallery}`;
      if (key !== tilesKey) {
        tilesKey = key;
        const target = gallery ? GALLERY_PX : meta.n > 1 ? BATCH_PX : SINGLE_PX;
        const px = Math.round(meta.size * zoomFor(meta.size, target));
        tiles = Array.from({ length: meta.n }, () => {
          const canvas = h("canvas", { class: "cnnw-fv-canvas", width: meta.size, height: meta.size });
          canvas.style.width = canvas.style.height = `${px}px`;
          const label = h("figcaption", { class: "cnnw-fv-label" });
          return { canvas, label, figure: h("figure", { class: "cnnw-fv-tile" }, [canvas, label]) };
        });
        images.replaceChildren(...tiles.map((t) => t.figure));
      }
      tiles.forEach((tile, i) => {
        const image = new ImageData(rgbaOf(bytes, meta, i), meta.size, meta.size);
        tile.canvas.getContext("2d").putImageData(image, 0, 0);
        tile.canvas.dataset.step = String(meta.step ?? "");
        tile.label.textContent = String(labels[i] ?? "");
        tile.figure.title = String(labels[i] ?? "");
      });
      images.dataset.step = String(meta.step ?? "");
      images.dataset.final = String(Boolean(meta.final));
    }

    function drawProgress() {
      drawBar();
      const p = model.get("progress") ?? {};
      progress.dataset.step = String(p.step ?? 0);
      progress.title = p.steps ? `step ${p.step ?? 0} of ${p.steps}` : "";
    }

    function drawRunning() {
      const running = model.get("running");
      cancelButton.disabled = !running;
      root.dataset.running = String(running);
    }

    function drawPager() {
      const gallery = model.get("mode") === "gallery";
      const pages = model.get("gallery_pages") ?? 1;
      const page = model.get("page") ?? 0;
      pager.hidden = !gallery;
      pageInfo.textContent = pageText(page, pages, model.get("gallery_done") ?? []);
      prev.disabled = page <= 0;
      next.disabled = page >= pages - 1;
    }

    function fillLayers() {
      const pairs = (model.get("layers") ?? []).map((l) => [l.name, `${l.name} (${(l.shape ?? []).join("×")})`]);
      setOptions(layer, pairs);
      syncControls();
    }

    function syncControls() {
      const kind = model.get("objective");
      const gallery = model.get("mode") === "gallery";
      mode.value = model.get("mode");
      objective.value = kind;
      layer.value = model.get("layer");
      layer.disabled = kind === "class";
      const isClass = kind === "class";
      unitsLabel.textContent = isClass ? "Classes" : "Channels";
      units.value = (model.get(isClass ? "classes" : "channels") ?? []).join(", ");
      const count = isClass ? (model.get("class_names") ?? []).length : channelCount(layerShape(model.get("layer")));
      unitsHint.textContent = count > 0 ? `of 0–${count - 1}` : "";
      unitsBox.hidden = gallery;
      where.hidden = gallery || kind !== "neuron";
      x.value = model.get("x");
      y.value = model.get("y");
      param.value = model.get("param");
      decorrelate.checked = model.get("decorrelate");
      transforms.value = model.get("transforms");
      steps.value = model.get("steps");
      size.value = model.get("size");
      const [ih, iw] = model.get("input_size") ?? [];
      sizeHint.textContent = ih && iw ? `px (model input ${iw}×${ih})` : "px";
      lr.value = model.get("learning_rate");
      seed.value = model.get("seed");
      pageSize.value = model.get("page_size");
      pageSizeBox.hidden = !gallery;
    }

    const showStatus = showsText(model, "status", status);

    // ---- controls ----
    mode.addEventListener("change", () => save({ mode: mode.value }));
    objective.addEventListener("change", () => save({ objective: objective.value }));
    layer.addEventListener("change", () => {
      // Channels the new layer lacks go with the layer change, clamped, so Python checks one consistent pair.
      const count = channelCount(layerShape(layer.value));
      const channels = (model.get("channels") ?? []).map((c) => (count > 0 ? Math.min(c, count - 1) : c));
      save({ layer: layer.value, channels: [...new Set(channels)] });
    });
    commitOnEnter(units, () => {
      const parsed = parseIndices(units.value);
      const name = model.get("objective") === "class" ? "classes" : "channels";
      if (parsed) save({ [name]: parsed });
      else {
        error.textContent = `type ${name} as whole numbers, e.g. "3" or "0, 5, 9"; got "${units.value}".`;
        error.hidden = false;
        units.value = (model.get(name) ?? []).join(", ");
      }
    });
    /** A number input writes its trait when it holds a number (integers rounded), else shows the trait again. */
    function bindNumber(input, name, integer = true) {
      commitOnEnter(input, () => {
        const value = Number(input.value);
        if (input.value !== "" && Number.isFinite(value)) save({ [name]: integer ? Math.round(value) : value });
        else input.value = model.get(name);
      });
    }
    bindNumber(x, "x");
    bindNumber(y, "y");
    bindNumber(steps, "steps");
    bindNumber(size, "size");
    bindNumber(lr, "learning_rate", false);
    bindNumber(seed, "seed");
    bindNumber(pageSize, "page_size");
    param.addEventListener("change", () => save({ param: param.value }));
    decorrelate.addEventListener("change", () => save({ decorrelate: decorrelate.checked }));
    transforms.addEventListener("change", () => save({ transforms: transforms.value }));
    renderButton.addEventListener("click", () => model.send({ action: "render" }));
    cancelButton.addEventListener("click", () => model.send({ action: "cancel" }));
    prev.addEventListener("click", () => save({ page: Math.max(0, model.get("page") - 1) }));
    next.addEventListener("click", () => save({ page: model.get("page") + 1 }));

    // ---- trait changes ----
    const reactions = [
      [fillLayers, ["layers"]],
      [syncControls, ["mode", "objective", "layer", "channels", "classes", "x", "y", "param", "decorrelate",
        "transforms", "steps", "size", "learning_rate", "seed", "page_size", "class_names", "input_size"]],
      [drawImages, ["pixels", "images_meta"]],
      [drawProgress, PROGRESS_TRAITS],
      [drawRunning, ["running"]],
      [drawPager, ["mode", "page", "gallery_pages", "gallery_done"]],
      [showError, ["error"]],
      [showStatus, ["status"]],
    ];
    const { dispose } = react(model, reactions);

    return () => {
      dispose();
      unmountChart();
    };
  },
};
