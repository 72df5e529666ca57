// The AttributionMap view: one canvas per attribution method, the heat map drawn over the input image, with the
// image and class pickers, opacity, colour map, normalization and sign controls, progress, Cancel and an error
// box. Python sends each map as uint8 quantized over its own signed range (docs/wire-format.md's tile stack);
// opacity, colour map, normalization and sign are applied here, so switching them never waits for the kernel.
// Model text (class names, method labels, messages) only reaches the page through textContent and option text.
import { colormap, COLORMAPS } from "./colormaps.js";
import { colorBar } from "./colorbar.js";
import {
  baseStyle, errorBox, h, mountWidget, PROGRESS_TRAITS, progressBar, react, setOptions, showsText, warningBox,
} from "./dom.js";
import { aucText, heatLut, scales, SIGNS } from "./heatmaps.js";
import { bytesOf, floatsOf, paintIndexed, paintRGB, stackComplete, tileScale, tileView } from "./tiles.js";

const MAP_PX = 192; // each map is zoomed by a whole factor to at least this many pixels a side

const STYLE = baseStyle("cnnw-am", ["select", "button"]) + `
.cnnw-am-outer { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 8px; min-width: 0; }
.cnnw-am-outer > .cnnw-am { flex: 1 1 400px; }
.cnnw-am-outer > .cnnw-am-charts { display: flex; flex-direction: column; flex: 0 1 360px; min-width: 0; }
.cnnw-am { display: flex; flex-direction: column; gap: 8px; padding: 4px 0; min-width: 0; }
.cnnw-am .cnnw-am-row { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
/* width 100% of a content-sized label: the select may shrink below its longest class name in a narrow sidebar */
.cnnw-am .cnnw-am-class { width: 100%; max-width: 22em; min-width: 0; }
.cnnw-am button { padding: 1px 10px; }
.cnnw-am button:disabled { opacity: 0.4; }
.cnnw-am .cnnw-am-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-am .cnnw-am-maps { display: flex; flex-wrap: wrap; gap: 10px; }
.cnnw-am .cnnw-am-map { margin: 0; display: flex; flex-direction: column; align-items: center; gap: 2px;
  max-width: 100%; }
.cnnw-am .cnnw-am-map[data-done="false"] .cnnw-am-canvas { opacity: 0.35; }
/* a map's colour bar wraps inside the width of its map (set on the figure): centred and wider than the map, its
   label ran past the map's left edge, out of a narrow panel's scroll box (as UncertaintyView's did) */
.cnnw-am .cnnw-am-map .cnnw-colorbar { justify-content: center; text-align: center; }
.cnnw-am .cnnw-am-canvas { image-rendering: pixelated; max-width: 100%; background: var(--jp-layout-color2, #eee); }
.cnnw-am .cnnw-am-label { max-width: ${MAP_PX}px; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  font-weight: 600; }
.cnnw-am .cnnw-am-swatch { display: inline-block; width: 10px; height: 10px; margin-right: 5px;
  border-radius: 2px; }
.cnnw-am .cnnw-am-score { font-size: var(--jp-ui-font-size0, 11px); }
.cnnw-am .cnnw-am-warn { font-size: var(--jp-ui-font-size0, 11px); color: var(--jp-warn-color0, #b26b00);
  max-width: ${MAP_PX}px; }
/* the random map's scores: the reference a faithful map beats; its curves are the grey dashed lines */
.cnnw-am .cnnw-am-reference { font-size: var(--jp-ui-font-size0, 11px); display: flex; align-items: center; }
.cnnw-am .cnnw-am-reference-swatch { display: inline-block; width: 16px; height: 0; margin-right: 5px;
  border-top: 2px dashed #9e9e9e; }
`;

/** What the colour bar's values are under each sign choice. */
const SIGN_LABELS = { positive: "attribution score (positive part)", negative: "attribution score (negative part, as -score)",
  absolute: "|attribution score|", both: "attribution score" };

/** createElement with a class, properties and children; text goes in through textContent only. */
export default {
  render({ model, el }) {
    // ---- DOM ----
    const image = h("select", { class: "cnnw-am-image" });
    const target = h("select", { class: "cnnw-am-class" });
    const computeButton = h("button", { class: "cnnw-am-compute", type: "button", text: "Compute" });
    const cancelButton = h("button", { class: "cnnw-am-cancel", type: "button", text: "Cancel" });
    const [progress, drawProgress] = progressBar(model);
    const status = h("span", { class: "cnnw-am-status cnnw-am-muted", "aria-live": "polite" });
    const opacity = h("input", { class: "cnnw-am-opacity", type: "range", min: 0, max: 1, step: 0.05 });
    const opacityText = h("span", { class: "cnnw-am-opacity-value cnnw-am-muted" });
    const cmap = h("select", { class: "cnnw-am-colormap" });
    const normalization = h("select", { class: "cnnw-am-normalization" });
    const sign = h("select", { class: "cnnw-am-sign" });
    setOptions(cmap, COLORMAPS.map((c) => [c, c]));
    setOptions(normalization, [["map", "per map"], ["shared", "shared"]]);
    setOptions(sign, SIGNS.map((s) => [s, s]));
    const [error, showError] = errorBox(model);
    const [warning, showWarning] = warningBox(model);
    const maps = h("div", { class: "cnnw-am-maps" });
    const referenceText = h("span", { class: "cnnw-am-reference-text" });
    const reference = h("div", { class: "cnnw-am-reference cnnw-am-muted", hidden: true,
      title: "a map that ranks pixels at random: a faithful map deletes lower and inserts higher" },
    [h("span", { class: "cnnw-am-reference-swatch" }), referenceText]);

    const root = h("div", { class: "cnnw-am" }, [
      h("style", { text: STYLE }),
      h("div", { class: "cnnw-am-row" }, [
        h("label", {}, ["Image", image]), h("label", {}, ["Class", target]),
        computeButton, cancelButton, progress, status,
      ]),
      h("div", { class: "cnnw-am-row" }, [
        h("label", {}, ["Opacity", opacity, opacityText]), h("label", {}, ["Colour map", cmap]),
        h("label", {}, ["Normalization", normalization]), h("label", {}, ["Sign", sign]),
      ]),
      error,
      warning,
      maps,
      reference,
    ]);
    // the deletion and insertion charts (bqplot figures held in the model's traits) beside the maps
    const charts = h("div", { class: "cnnw-am-charts" }, [h("div"), h("div")]);
    el.replaceChildren(h("div", { class: "cnnw-am-outer" }, [root, charts]));
    const unmount = ["deletion_chart", "insertion_chart"].map((name, i) => mountWidget(model, name, charts.children[i]));

    function save(values) {
      for (const [name, value] of Object.entries(values)) model.set(name, value);
      model.save_changes();
    }

    // ---- drawing ----
    /** One figure per method slot, rebuilt only when the slots or the map size change. */
    let figures = [];
    let figuresKey = "";

    function ensureFigures(meta) {
      const key = `${meta.k}/${meta.h}/${meta.w}/${(meta.labels ?? []).join("|")}`;
      if (key === figuresKey) return;
      figuresKey = key;
      const zoom = tileScale(meta.h, meta.w, MAP_PX);
      figures = [];
      (meta.labels ?? []).forEach((label) => {
        const canvas = h("canvas", { class: "cnnw-am-canvas", width: meta.w * zoom, height: meta.h * zoom });
        // The swatch is the colour of this method's deletion and insertion curves in the charts beside the view.
        const swatch = h("span", { class: "cnnw-am-swatch" });
        swatch.style.background = (meta.colors ?? [])[figures.length] ?? "transparent";
        const caption = h("div", { class: "cnnw-am-label", title: label }, [swatch, label]);
        const score = h("div", { class: "cnnw-am-score cnnw-am-muted" });
        const warn = h("div", { class: "cnnw-am-warn", hidden: true }); // why this map cannot be trusted (text)
        const bar = colorBar("cnnw-am-bar"); // the colours in attribution scores, under this map's scale
        const figure = h("figure", { class: "cnnw-am-map" }, [canvas, caption, bar.node, score, warn]);
        figure.style.width = `${canvas.width}px`; // no wider than the map (max-width 100% in a narrow panel)
        figures.push({ canvas, score, figure, bar, warn });
      });
      maps.replaceChildren(...figures.map((f) => f.figure));
    }

    function drawMaps() {
      const meta = model.get("maps_meta") ?? {};
      if (!meta.k) return;
      const bytes = bytesOf(model.get("map_bytes"));
      const ranges = floatsOf(model.get("map_ranges"));
      const picture = bytesOf(model.get("image"));
      // The stack and its meta travel in one message; if not, keep the last drawing rather than a torn one.
      if (!stackComplete(bytes, ranges, meta) || picture.length < meta.h * meta.w * 3) return;
      ensureFigures(meta);
      const done = meta.done ?? [];
      const chosenSign = model.get("sign");
      const scale = scales(ranges, done, chosenSign, model.get("normalization"));
      const table = colormap(model.get("colormap"));
      const alpha = model.get("opacity");
      const scores = model.get("scores") ?? [];
      figures.forEach((f, i) => {
        const ctx = f.canvas.getContext("2d");
        const out = ctx.createImageData(f.canvas.width, f.canvas.height);
        const rect = { x: 0, y: 0, w: f.canvas.width, h: f.canvas.height };
        paintRGB(out, rect, { data: picture, w: meta.w, h: meta.h });
        if (done[i]) {
          const lut = heatLut(ranges[2 * i], ranges[2 * i + 1], chosenSign, scale[i]);
          paintIndexed(out, rect, { data: tileView(bytes, meta, i), w: meta.w, h: meta.h }, table, lut, alpha);
          f.bar.update({ table, lo: chosenSign === "both" ? -scale[i] : 0, hi: scale[i], label: SIGN_LABELS[chosenSign],
            title: "attribution scores are the method's own units (gradients, or probability changes for perturbation " +
              "methods); compare maps by rank, not by value" });
        } else {
          f.bar.hide();
        }
        ctx.putImageData(out, 0, 0);
        f.figure.dataset.done = String(Boolean(done[i]));
        const s = scores[i] ?? {};
        if (s.error) f.score.textContent = "failed: see the message above";
        else if (!done[i]) f.score.textContent = model.get("running") ? "computing…" : "not computed: Compute";
        else if (!model.get("curves")) f.score.textContent = ""; // no curves asked for: no scores to wait for
        else f.score.textContent = `deletion ${aucText(s.deletion)} · insertion ${aucText(s.insertion)}`;
        f.figure.title = s.error ?? "";
        f.warn.textContent = done[i] && s.warning ? `⚠ ${s.warning}` : "";
        f.warn.hidden = !f.warn.textContent;
        f.figure.dataset.warning = f.warn.textContent ? "true" : "false";
      });
      maps.dataset.image = String(meta.image_index);
      maps.dataset.target = String(meta.target);
    }

    function drawReference() {
      const r = model.get("reference") ?? {};
      const known = r.deletion != null;
      reference.hidden = !known || !(model.get("scores") ?? []).length || !model.get("curves");
      // curves off (curves=False): no empty charts waiting forever (style, not [hidden]: the charts sit outside the
      // view's root, where baseStyle's [hidden] rule does not reach, and their class sets display: flex)
      charts.style.display = model.get("curves") ? "" : "none";
      referenceText.textContent = known
        ? `random map (reference): deletion ${aucText(r.deletion)} · insertion ${aucText(r.insertion)}` : "";
    }

    function fillImages() {
      const n = model.get("n_images") ?? 1;
      setOptions(image, Array.from({ length: n }, (_, i) => [i, `image ${i}`]));
      image.value = String(model.get("image_index"));
    }

    function fillClasses() {
      const pairs = (model.get("predictions") ?? []).map((p) =>
        [p.index, `${p.label} — ${(100 * p.p).toFixed(1)}%`]);
      setOptions(target, pairs);
      target.value = String(model.get("target"));
    }

    function syncControls() {
      image.value = String(model.get("image_index"));
      target.value = String(model.get("target"));
      opacity.value = String(model.get("opacity"));
      opacityText.textContent = `${Math.round(100 * model.get("opacity"))}%`;
      cmap.value = model.get("colormap");
      normalization.value = model.get("normalization");
      sign.value = model.get("sign");
    }

    function drawRunning() {
      const running = model.get("running");
      cancelButton.disabled = !running;
      root.dataset.running = String(running);
    }

    const showStatus = showsText(model, "status", status);

    // ---- controls ----
    image.addEventListener("change", () => save({ image_index: Number(image.value) }));
    target.addEventListener("change", () => save({ target: Number(target.value) }));
    // The slider redraws from the local model at once; the value reaches Python too, but nothing waits for it.
    opacity.addEventListener("input", () => save({ opacity: Number(opacity.value) }));
    cmap.addEventListener("change", () => save({ colormap: cmap.value }));
    normalization.addEventListener("change", () => save({ normalization: normalization.value }));
    sign.addEventListener("change", () => save({ sign: sign.value }));
    computeButton.addEventListener("click", () => model.send({ action: "compute" }));
    cancelButton.addEventListener("click", () => model.send({ action: "cancel" }));

    // ---- trait changes ----
    const reactions = [
      [fillImages, ["n_images"]],
      [fillClasses, ["predictions", "target"]],
      [syncControls, ["image_index", "target", "opacity", "colormap", "normalization", "sign"]],
      [drawMaps, ["map_bytes", "map_ranges", "maps_meta", "scores", "curves", "image", "opacity", "colormap",
        "normalization", "sign", "running"]],
      [drawReference, ["reference", "scores", "curves"]],
      [drawProgress, PROGRESS_TRAITS],
      [drawRunning, ["running"]],
      [showError, ["error"]],
      [showWarning, ["warning"]],
      [showStatus, ["status"]],
    ];
    const { dispose } = react(model, reactions);

    return () => {
      dispose();
      unmount.forEach((u) => u());
    };
  },
};
