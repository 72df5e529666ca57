// The UncertaintyView: controls (image, dropout samples, seed, the map whose spread is shown, Compute, Cancel,
// progress), an error box, the numbers of the image shown with their reading in words, three canvases (the image,
// the mean map across dropout samples, its per-pixel standard deviation), the predictive-distribution chart, and
// with data the calibration part (ECE before/after, reliability and confidence charts, the most uncertain images).
// Charts are bqplot figures held in the model's traits and mounted here. Model text (class names, readings,
// messages) reaches the page only through textContent and option text; the view computes no model result.
import { colormap } from "./colormaps.js";
import {
  baseStyle, commitOnEnter, errorBox, h, mountWidget, PROGRESS_TRAITS, progressBar, react, setOptions, showsText,
  warningBox,
} from "./dom.js";
import { bytesOf, floatsOf, indexLut, paintIndexed, paintRGB, stackComplete, tileScale, tileView } from "./tiles.js";
import { colorBar } from "./colorbar.js";

const MAP_PX = 160;
// The reliability diagram's legend, drawn under the chart (a legend box inside it would hide points: they can
// fall in any corner). Colours as BEFORE, AFTER and DIAGONAL in cnnwidget/widgets/uncertainty_view.py.
const LEGEND = [["perfect", "#9e9e9e", "dashed"], ["before (T = 1)", "#4c72b0", "dot"],
  ["after temperature scaling", "#dd8452", "dot"]];
const THUMB_PX = 72;

/** The job's fraction done: Python sends it whole ({stage, fraction}, the stages weighted), not done/total. */
const stageFraction = (progress) => Math.min(1, Math.max(0, progress?.fraction ?? 0));

const STYLE = baseStyle("cnnw-uv", ["select", "input", "button"]) + `
.cnnw-uv { display: flex; flex-direction: column; gap: 8px; padding: 4px 0; min-width: 0; }
.cnnw-uv .cnnw-uv-row { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
.cnnw-uv input[type=number] { width: 6em; }
.cnnw-uv button { padding: 1px 10px; }
.cnnw-uv button:disabled { opacity: 0.4; }
.cnnw-uv .cnnw-uv-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-uv .cnnw-uv-main { display: flex; flex-wrap: wrap; gap: 12px; align-items: flex-start; }
.cnnw-uv .cnnw-uv-left { display: flex; flex-direction: column; gap: 6px; flex: 1 1 360px; min-width: 0; }
.cnnw-uv .cnnw-uv-chart { flex: 0 1 440px; min-width: 0; }
.cnnw-uv .cnnw-uv-numbers { font-variant-numeric: tabular-nums; }
.cnnw-uv .cnnw-uv-reading { max-width: 60em; }
.cnnw-uv .cnnw-uv-note { color: var(--jp-warn-color1, #f57c00); }
.cnnw-uv .cnnw-uv-maps { display: flex; flex-wrap: wrap; gap: 10px; }
.cnnw-uv figure { margin: 0; display: flex; flex-direction: column; align-items: center; gap: 2px; max-width: 100%; }
.cnnw-uv figure[data-done="false"] canvas { opacity: 0.35; }
.cnnw-uv canvas { image-rendering: pixelated; max-width: 100%; background: var(--jp-layout-color2, #eee); }
/* a map's colour bar wraps inside the width of its image (set on the figure): centred and wider than the image, its
   label ran past the image's left edge, out of a narrow panel's scroll box */
.cnnw-uv .cnnw-uv-maps .cnnw-colorbar { justify-content: center; text-align: center; }
.cnnw-uv figcaption { max-width: ${MAP_PX}px; font-size: var(--jp-ui-font-size0, 11px); text-align: center; }
.cnnw-uv .cnnw-uv-calibration { display: flex; flex-direction: column; gap: 6px; }
.cnnw-uv .cnnw-uv-charts { display: flex; flex-wrap: wrap; gap: 12px; }
.cnnw-uv .cnnw-uv-charts > div { flex: 1 1 300px; min-width: 0; max-width: 440px; }
.cnnw-uv .cnnw-uv-legend { display: flex; flex-wrap: wrap; gap: 2px 14px; justify-content: center;
  font-size: var(--jp-ui-font-size0, 11px); }
.cnnw-uv .cnnw-uv-legend span { display: inline-flex; align-items: center; gap: 5px; }
.cnnw-uv .cnnw-uv-swatch { display: inline-block; width: 18px; height: 0; border-top: 2px solid; position: relative; }
.cnnw-uv .cnnw-uv-swatch[data-style=dashed] { border-top-style: dashed; }
.cnnw-uv .cnnw-uv-swatch[data-style=dot]::after { content: ""; position: absolute; left: 5px; top: -5px;
  width: 8px; height: 8px; border-radius: 50%; background: currentColor; }
.cnnw-uv .cnnw-uv-uncertain { display: flex; flex-wrap: wrap; gap: 8px; }
.cnnw-uv .cnnw-uv-uncertain figcaption { max-width: ${THUMB_PX + 24}px; overflow-wrap: anywhere; }
`;

function fixed(value, digits = 3) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : "–";
}

export default {
  render({ model, el }) {
    // ---- DOM ----
    const image = h("select", { class: "cnnw-uv-image" });
    const samples = h("input", { class: "cnnw-uv-samples", type: "number", min: 1, max: 1000, step: 1 });
    const seed = h("input", { class: "cnnw-uv-seed", type: "number", min: 0, step: 1 });
    const method = h("select", { class: "cnnw-uv-method" });
    setOptions(method, [["saliency", "saliency"], ["grad_cam", "Grad-CAM"]]);
    const computeButton = h("button", { class: "cnnw-uv-compute", type: "button", text: "Compute" });
    const cancelButton = h("button", { class: "cnnw-uv-cancel", type: "button", text: "Cancel" });
    const [progress, drawProgress] = progressBar(model, stageFraction);
    const status = h("span", { class: "cnnw-uv-status cnnw-uv-muted", "aria-live": "polite" });
    const [error, showError] = errorBox(model);
    const [warning, showWarning] = warningBox(model);
    const numbers = h("div", { class: "cnnw-uv-numbers" });
    const reading = h("div", { class: "cnnw-uv-reading" });
    const note = h("div", { class: "cnnw-uv-note", hidden: true });
    const maps = h("div", { class: "cnnw-uv-maps" });
    const distribution = h("div", { class: "cnnw-uv-chart" });
    const eceText = h("div", { class: "cnnw-uv-ece cnnw-uv-numbers" });
    const calibrationNote = h("div", { class: "cnnw-uv-note", hidden: true });
    const reliabilityChart = h("div");
    const legend = h("div", { class: "cnnw-uv-legend" }, LEGEND.map(([label, color, style]) => h("span", {}, [
      h("span", { class: "cnnw-uv-swatch", "data-style": style, style: `color: ${color}; border-color: ${color}` }),
      label])));
    const reliability = h("div", { class: "cnnw-uv-reliability" }, [reliabilityChart, legend]);
    const confidence = h("div");
    const uncertain = h("div", { class: "cnnw-uv-uncertain" });
    const calibration = h("div", { class: "cnnw-uv-calibration", hidden: true }, [
      h("strong", { text: "Calibration" }), eceText, calibrationNote,
      h("div", { class: "cnnw-uv-charts" }, [reliability, confidence]),
      h("div", { text: "Most uncertain images (highest predictive entropy)" }), uncertain,
    ]);
    const root = h("div", { class: "cnnw-uv" }, [
      h("style", { text: STYLE }),
      h("div", { class: "cnnw-uv-row" }, [
        h("label", {}, ["Image", image]), h("label", {}, ["Samples", samples]), h("label", {}, ["Seed", seed]),
        h("label", {}, ["Map", method]), computeButton, cancelButton, progress, status,
      ]),
      error,
      warning,
      h("div", { class: "cnnw-uv-main" }, [
        h("div", { class: "cnnw-uv-left" }, [numbers, reading, note, maps]), distribution,
      ]),
      calibration,
    ]);
    el.replaceChildren(root);
    const unmount = [
      mountWidget(model, "distribution_chart", distribution),
      mountWidget(model, "reliability_chart", reliabilityChart),
      mountWidget(model, "confidence_chart", confidence),
    ];

    function save(values) {
      for (const [name, value] of Object.entries(values)) model.set(name, value);
      model.save_changes();
    }

    // ---- drawing ----
    let figures = [];
    let figuresKey = "";

    function ensureFigures(meta) {
      const key = `${meta.h}/${meta.w}`;
      if (key === figuresKey) return;
      figuresKey = key;
      const zoom = tileScale(meta.h, meta.w, MAP_PX);
      figures = [0, 1, 2].map(() => {
        const canvas = h("canvas", { width: meta.w * zoom, height: meta.h * zoom });
        const caption = h("figcaption");
        const bar = colorBar("cnnw-uv-bar"); // the map's colours in its own values (0 to its maximum)
        const figure = h("figure", {}, [canvas, bar.node, caption]);
        figure.style.width = `${canvas.width}px`; // no wider than the image (max-width 100% in a narrow panel)
        return { canvas, caption, bar, figure };
      });
      figures[0].figure.classList.add("cnnw-uv-input");
      figures[1].figure.classList.add("cnnw-uv-mean");
      figures[2].figure.classList.add("cnnw-uv-std");
      maps.replaceChildren(...figures.map((f) => f.figure));
    }

    function drawMaps() {
      const meta = model.get("maps_meta") ?? {};
      if (!meta.h || !meta.w) return;
      const picture = bytesOf(model.get("image"));
      if (picture.length < meta.h * meta.w * 3) return;
      ensureFigures(meta);
      const bytes = bytesOf(model.get("maps"));
      const ranges = floatsOf(model.get("map_ranges"));
      const ready = Boolean(meta.done) && stackComplete(bytes, ranges, meta) && meta.image_index === model.get("image_index");
      const labels = meta.labels ?? [];
      const table = colormap("magma");
      figures.forEach((f, i) => {
        const ctx = f.canvas.getContext("2d");
        const out = ctx.createImageData(f.canvas.width, f.canvas.height);
        const rect = { x: 0, y: 0, w: f.canvas.width, h: f.canvas.height };
        paintRGB(out, rect, { data: picture, w: meta.w, h: meta.h });
        if (i > 0 && ready) {
          const lut = indexLut(ranges[2 * (i - 1)], ranges[2 * (i - 1) + 1], 0, ranges[2 * (i - 1) + 1]);
          paintIndexed(out, rect, { data: tileView(bytes, meta, i - 1), w: meta.w, h: meta.h }, table, lut,
            i === 1 ? 0.7 : 0.85);
          f.bar.update({ table, lo: 0, hi: ranges[2 * (i - 1) + 1], label: labels[i - 1] ?? "" });
        } else {
          f.bar.hide();
        }
        ctx.putImageData(out, 0, 0);
        f.figure.dataset.done = String(i === 0 || ready);
        f.caption.textContent = i === 0 ? `image ${model.get("image_index")}`
          : (ready ? labels[i - 1] ?? "" : (model.get("running") ? "computing…" : "not computed"));
      });
      maps.dataset.image = String(meta.image_index);
      maps.dataset.done = String(ready);
    }

    function drawSummary() {
      const s = model.get("summary") ?? {};
      if (s.image_index === undefined) {
        numbers.textContent = "";
        reading.textContent = "";
        note.hidden = true;
        return;
      }
      numbers.textContent = `${s.label} ${(100 * s.p).toFixed(1)}% ± ${(100 * s.std).toFixed(1)} · ` +
        `predictive entropy ${fixed(s.entropy)} nats (max ${fixed(s.max_entropy)}) · ` +
        `expected entropy ${fixed(s.expected_entropy)} · mutual information ${fixed(s.mutual_information, 4)} · ` +
        `${s.samples} samples, seed ${s.seed}`;
      reading.textContent = s.reading ?? "";
      note.textContent = s.note ?? "";
      note.hidden = !s.note;
      root.dataset.summaryImage = String(s.image_index);
    }

    function drawCalibration() {
      calibration.hidden = !model.get("has_data");
      const c = model.get("calibration") ?? {};
      if (!c.before) {
        eceText.textContent = model.get("has_data") ? "calibration: not computed yet" : "";
        calibrationNote.hidden = true;
        return;
      }
      const b = c.before;
      const a = c.after;
      eceText.textContent = `evaluation split (${b.n} images): ECE ${fixed(b.ece, 4)} → ${fixed(a.ece, 4)} · ` +
        `MCE ${fixed(b.mce)} → ${fixed(a.mce)} · NLL ${fixed(b.nll, 4)} → ${fixed(a.nll, 4)} · ` +
        `Brier ${fixed(b.brier, 4)} → ${fixed(a.brier, 4)} at temperature T = ${fixed(c.temperature)} ` +
        `(fitted on ${Math.round(100 * c.holdout)}% held out) · all ${c.overall.n} images: ECE ${fixed(c.overall.ece, 4)}, ` +
        `accuracy ${(100 * c.overall.accuracy).toFixed(1)}%`;
      calibrationNote.textContent = c.note ?? "";
      calibrationNote.hidden = !c.note;
      drawUncertain();
    }

    function drawUncertain() {
      const meta = model.get("uncertain_meta") ?? [];
      const bytes = bytesOf(model.get("uncertain"));
      const shape = model.get("maps_meta") ?? {};
      const size = (shape.h ?? 0) * (shape.w ?? 0) * 3;
      if (!size || bytes.length < meta.length * size) return;
      const zoom = tileScale(shape.h, shape.w, THUMB_PX);
      uncertain.replaceChildren(...meta.map((m, i) => {
        const canvas = h("canvas", { width: shape.w * zoom, height: shape.h * zoom });
        const ctx = canvas.getContext("2d");
        const out = ctx.createImageData(canvas.width, canvas.height);
        paintRGB(out, { x: 0, y: 0, w: canvas.width, h: canvas.height },
          { data: bytes.subarray(i * size, (i + 1) * size), w: shape.w, h: shape.h });
        ctx.putImageData(out, 0, 0);
        const caption = h("figcaption", { text: `#${m.index}: ${m.label} → ${m.predicted}, H ${fixed(m.entropy, 2)}` });
        return h("figure", {}, [canvas, caption]);
      }));
    }

    function fillImages() {
      const n = model.get("n_images") ?? 1;
      setOptions(image, Array.from({ length: n }, (_, i) => [i, `image ${i}`]));
      image.value = String(model.get("image_index"));
    }

    function syncControls() {
      image.value = String(model.get("image_index"));
      samples.value = String(model.get("samples"));
      seed.value = String(model.get("seed"));
      method.value = model.get("spread_method");
    }

    function drawRunning() {
      const running = model.get("running");
      cancelButton.disabled = !running;
      root.dataset.running = String(running);
    }

    // ---- controls ----
    image.addEventListener("change", () => save({ image_index: Number(image.value) }));
    // A typed number goes to the kernel as typed (a float or a negative is refused there, with a message).
    commitOnEnter(samples, () => save({ samples: Number(samples.value) }));
    commitOnEnter(seed, () => save({ seed: Number(seed.value) }));
    method.addEventListener("change", () => save({ spread_method: method.value }));
    computeButton.addEventListener("click", () => model.send({ action: "compute" }));
    cancelButton.addEventListener("click", () => model.send({ action: "cancel" }));

    const { dispose } = react(model, [
      [fillImages, ["n_images"]],
      [syncControls, ["image_index", "samples", "seed", "spread_method"]],
      [drawMaps, ["maps", "map_ranges", "maps_meta", "image", "image_index", "running"]],
      [drawSummary, ["summary"]],
      [drawCalibration, ["calibration", "has_data", "uncertain", "uncertain_meta"]],
      [drawProgress, PROGRESS_TRAITS],
      [drawRunning, ["running"]],
      [showError, ["error"]],
      [showWarning, ["warning"]],
      [showsText(model, "status", status), ["status"]],
    ]);

    return () => {
      dispose();
      unmount.forEach((u) => u());
    };
  },
};
