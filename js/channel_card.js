// The ChannelCard view: one channel's feature visualization beside its top-k data-set patches (each with the image
// index and activation value), its histogram over the data set, its mean / std / zero fraction, a plain "dead on
// this data" line, and the classes it supports (bars). Python sends the patches as one uint8 RGBA buffer and the
// rendering as uint8 RGB; this view draws them and writes back the layer, channel and k the person picks. Model
// text (layer and class names) reaches the page through textContent and option text only.
import {
  baseStyle, commitOnEnter, errorBox, h, kernelLive, PROGRESS_TRAITS, progressBar, react, setOptions, showsText,
  warningBox,
} from "./dom.js";
import { rgbaOf, zoomFor } from "./images.js";
import {
  histogramHeights, patchImg, patchesComplete, percentText, supportRows, valueText,
} from "./patches.js";
import { bytesOf } from "./tiles.js";

const PATCH_PX = 72; // each patch zoomed (whole pixels) to about this size
const FV_PX = 160; // the feature visualization
const HIST_W = 260;
const HIST_H = 72;

const STYLE = baseStyle("cnnw-cc") + `
.cnnw-cc { display: flex; flex-direction: column; gap: 8px; padding: 4px 0; min-width: 0; }
.cnnw-cc .cnnw-cc-row { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
.cnnw-cc .cnnw-cc-layer { width: 100%; max-width: 18em; min-width: 0; }
.cnnw-cc input[type="number"] { width: 5em; }
.cnnw-cc button { padding: 1px 10px; }
.cnnw-cc button:disabled { opacity: 0.4; }
.cnnw-cc .cnnw-cc-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-cc .cnnw-cc-partial, .cnnw-cc .cnnw-cc-dead { padding: 4px 8px;
  border-left: 3px solid var(--jp-warn-color1, #f57c00);
  background: var(--jp-layout-color2, #eeeeee); }
.cnnw-cc .cnnw-cc-main { display: flex; flex-wrap: wrap; gap: 16px; align-items: flex-start; }
.cnnw-cc figure { margin: 0; display: flex; flex-direction: column; align-items: center; gap: 2px; }
.cnnw-cc canvas, .cnnw-cc img { image-rendering: pixelated; }
.cnnw-cc .cnnw-cc-fv canvas { width: ${FV_PX}px; height: ${FV_PX}px; background: var(--jp-layout-color2, #eee); }
.cnnw-cc .cnnw-cc-caption { font-size: var(--jp-ui-font-size0, 11px); max-width: 100%; overflow: hidden;
  text-overflow: ellipsis; white-space: nowrap; }
.cnnw-cc .cnnw-cc-side { display: flex; flex-direction: column; gap: 6px; min-width: 0; }
.cnnw-cc .cnnw-cc-stats { display: grid; grid-template-columns: auto auto; gap: 0 12px; }
.cnnw-cc .cnnw-cc-patches { display: flex; flex-wrap: wrap; gap: 6px; }
/* outside the image (where the receptive field reaches past it) the patch is transparent: a checkerboard shows */
.cnnw-cc .cnnw-cc-patch img { background: repeating-conic-gradient(#ccc 0 25%, #fff 0 50%) 0 0 / 8px 8px; }
/* name, bar, "mean (count)": the number never wraps nor is cut; the bar gives way first, then the name (ellipsis),
   so the rows fit a 300 px sidebar */
.cnnw-cc .cnnw-cc-classes { display: grid; grid-template-columns: minmax(3em, max-content) minmax(32px, 140px)
  max-content; gap: 2px 8px; align-items: center; max-width: 100%; }
.cnnw-cc .cnnw-cc-classes > span:nth-child(3n) { white-space: nowrap; font-variant-numeric: tabular-nums; }
.cnnw-cc .cnnw-cc-class-name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; max-width: 14em; }
.cnnw-cc .cnnw-cc-bar { height: 10px; background: var(--jp-brand-color2, #64b5f6); border-radius: 2px; }
.cnnw-cc .cnnw-cc-bar[data-top="true"] { background: var(--jp-brand-color1, #1976d2); }
`;

function numberInput(cls, props = {}) {
  return h("input", { class: cls, type: "number", step: 1, ...props });
}

export default {
  render({ model, el }) {
    // ---- DOM ----
    const layer = h("select", { class: "cnnw-cc-layer" });
    const channel = numberInput("cnnw-cc-channel", { min: 0 });
    const channels = h("span", { class: "cnnw-cc-muted cnnw-cc-channels" });
    const k = numberInput("cnnw-cc-k", { min: 1 });
    const computeButton = h("button", { class: "cnnw-cc-compute", type: "button", text: "Compute" });
    const cancelButton = h("button", { class: "cnnw-cc-cancel", type: "button", text: "Cancel" });
    const [progress, drawProgress] = progressBar(model);
    const status = h("span", { class: "cnnw-cc-status cnnw-cc-muted", "aria-live": "polite" });
    const [error, showError] = errorBox(model);
    const [warning, showWarning] = warningBox(model);
    const partial = h("div", { class: "cnnw-cc-partial", role: "status", hidden: true });
    const fvCanvas = h("canvas", { width: 1, height: 1 });
    const fvCaption = h("figcaption", { class: "cnnw-cc-caption cnnw-cc-muted" });
    const fvFigure = h("figure", { class: "cnnw-cc-fv" }, [fvCanvas, fvCaption]);
    const stats = h("div", { class: "cnnw-cc-stats" });
    const dead = h("div", { class: "cnnw-cc-dead", role: "status", hidden: true });
    const histCanvas = h("canvas", { class: "cnnw-cc-histogram", width: HIST_W, height: HIST_H });
    const histCaption = h("div", { class: "cnnw-cc-caption cnnw-cc-muted cnnw-cc-histogram-caption" });
    const classesTitle = h("div", { class: "cnnw-cc-muted", text: "mean activation per class" });
    const classes = h("div", { class: "cnnw-cc-classes" });
    const classesBox = h("div", { class: "cnnw-cc-classes-box", hidden: true }, [classesTitle, classes]);
    const patchesTitle = h("div", { class: "cnnw-cc-patches-title" });
    const patches = h("div", { class: "cnnw-cc-patches" });

    const root = h("div", { class: "cnnw-cc" }, [
      h("style", { text: STYLE }),
      h("div", { class: "cnnw-cc-row" }, [
        h("label", {}, ["Layer", layer]), h("label", {}, ["Channel", channel, channels]), h("label", {}, ["k", k]),
        computeButton, cancelButton, progress, status,
      ]),
      error,
      warning,
      partial,
      h("div", { class: "cnnw-cc-main" }, [
        fvFigure,
        h("div", { class: "cnnw-cc-side" }, [stats, dead, h("figure", {}, [histCanvas, histCaption]), classesBox]),
      ]),
      patchesTitle,
      patches,
    ]);
    el.replaceChildren(root);

    function save(values) {
      for (const [name, value] of Object.entries(values)) model.set(name, value);
      model.save_changes();
    }

    // ---- what is shown: the kernel's traits, or the layer's channels sent ahead ----
    // Once a layer's full pass is drawn, the kernel sends every channel of it (when small: channel_card.py
    // _send_layer) in one custom message. A channel set in the page (the Explorer echoes a grid click) is drawn from
    // those at once; the kernel's own reply for it then holds the same and is drawn the same. The traits win as soon
    // as they are of the selected layer and channel; those sent ahead are used only for the layer, k and images they
    // were made for, so a channel is never shown with another's patches or another pass's numbers.
    const LAYER_ACTION = "cnnw_cc_layer";
    let ahead = null; // { layer, k, images, channels: [{patches_meta, histogram, stats, class_support, offset, nbytes}], bytes }
    function onCustom(message, buffers) {
      if (!message || message.action !== LAYER_ACTION || !Array.isArray(message.channels)) return;
      ahead = { ...message, bytes: bytesOf(buffers?.[0]) };
      root.dataset.ahead = `${ahead.layer} ${ahead.k}`; // for tests: which layer's channels the page holds
      for (const draw of [drawPatches, drawStats, drawHistogram, drawClasses, drawPartial]) schedule(draw);
    }
    function shown() {
      const meta = model.get("patches_meta") ?? {};
      const layer = model.get("layer");
      const channel = model.get("channel");
      const traits = {
        meta, bytes: bytesOf(model.get("patches")), stats: model.get("stats") ?? {},
        histogram: model.get("histogram") ?? {}, support: model.get("class_support"),
        images: model.get("images") ?? 0, partial: Boolean(model.get("partial")), from: "kernel",
      };
      if (meta.layer === layer && meta.channel === channel) return traits;
      const one = ahead && ahead.layer === layer && ahead.k === model.get("k") ? ahead.channels[channel] : null;
      if (!one || !(one.offset + one.nbytes <= ahead.bytes.length)) return traits;
      return {
        meta: one.patches_meta, bytes: ahead.bytes.subarray(one.offset, one.offset + one.nbytes), stats: one.stats,
        histogram: one.histogram, support: one.class_support, images: ahead.images, partial: false, from: "page",
      };
    }

    // ---- drawing ----
    function fillLayers() {
      setOptions(layer, (model.get("layers") ?? []).map((l) => [l.name, `${l.name} (${l.channels})`]));
      syncControls();
    }

    function syncControls() {
      layer.value = model.get("layer");
      channel.value = String(model.get("channel"));
      k.value = String(model.get("k"));
      const info = (model.get("layers") ?? []).find((l) => l.name === model.get("layer"));
      channels.textContent = info ? `of 0–${info.channels - 1}` : "";
      channel.max = info ? info.channels - 1 : "";
    }

    let patchesDrawn = ""; // what drawPatches drew last: the same again (the kernel's reply to a channel drawn
    // from what was sent ahead) is not drawn again
    function drawPatches() {
      const source = shown();
      const { meta, bytes, images } = source;
      const key = JSON.stringify([meta.layer, meta.channel, meta.n, meta.h, meta.w, meta.indices, meta.values, images,
        meta.score, bytes.length]);
      root.dataset.source = source.from;
      if (key === patchesDrawn && patches.dataset.n === String(meta.n ?? 0)) return;
      patchesDrawn = key;
      const by = meta.score === "mean" ? "mean" : "max";
      // a vector layer's unit (dense, global pooling) sees the whole image: its patches are whole images, resized
      const unit = meta.unit_name != null ? `unit ${meta.channel} (${meta.unit_name})` : `unit ${meta.channel}`;
      const input = meta.input ?? [meta.h, meta.w];
      const resized = meta.h !== input[0] || meta.w !== input[1] ? `, shown at ${meta.h}×${meta.w}` : "";
      patchesTitle.textContent = !meta.n ? "no images yet"
        : meta.whole_image
          ? `Top ${meta.n} of ${images} images by the value of ${unit}: the whole image (${input[0]}×${input[1]} ` +
            `px${resized}), since a unit of this layer sees all of it`
          : `Top ${meta.n} of ${images} images by the channel's ${by}: input under the receptive field ` +
            `(${meta.h}×${meta.w} px${meta.approximate ? ", approximate" : ""}) of the unit that fired most`;
      patchesTitle.title = meta.approximate ? meta.reason ?? "" : "";
      root.dataset.layer = meta.layer ?? "";
      root.dataset.channel = String(meta.channel ?? "");
      if (!patchesComplete(bytes, meta)) {
        patches.replaceChildren();
        patches.dataset.n = "0";
        return;
      }
      const zoom = zoomFor(Math.max(meta.h, meta.w), PATCH_PX);
      const figures = [];
      for (let i = 0; i < meta.n; i++) {
        const picture = patchImg(bytes, meta, i);
        picture.style.width = `${meta.w * zoom}px`;
        picture.style.height = `${meta.h * zoom}px`;
        const caption = h("figcaption", { class: "cnnw-cc-caption",
          text: `#${meta.indices[i]} · ${valueText(meta.values[i])}` });
        figures.push(h("figure", { class: "cnnw-cc-patch", title: `image ${meta.indices[i]}, ${by} ` +
          `${meta.values[i]}`, "data-index": String(meta.indices[i]) }, [picture, caption]));
      }
      patches.replaceChildren(...figures);
      patches.dataset.n = String(meta.n);
    }

    function drawFv() {
      // no feature visualization asked for (the Explorer renders it in a panel of its own): no empty box
      fvFigure.hidden = !model.get("feature_vis");
      if (fvFigure.hidden) return; // nothing to draw (and no canvas to reset on every running change)
      const meta = model.get("fv_meta") ?? {};
      const bytes = bytesOf(model.get("fv_pixels"));
      const size = meta.size ?? 0;
      fvFigure.dataset.final = String(Boolean(meta.final));
      if (!(size > 0) || bytes.length < size * size * 3) {
        fvCanvas.width = 1;
        fvCanvas.height = 1;
        fvCanvas.getContext("2d").clearRect(0, 0, 1, 1);
        fvCaption.textContent = model.get("running") ? "feature visualization: waiting…" : "feature visualization";
        return;
      }
      fvCanvas.width = size;
      fvCanvas.height = size;
      fvCanvas.getContext("2d").putImageData(new ImageData(rgbaOf(bytes, { n: 1, size }, 0), size, size), 0, 0);
      const where = meta.final ? "" : meta.step >= 0 ? ` · step ${meta.step} of ${meta.steps}` : " · stopped";
      fvCaption.textContent = `feature visualization${where}`;
    }

    /** Whether `value` differs from what the draw `name` drew last (and remember it): the kernel's reply to a
     * channel already drawn from what was sent ahead holds the same, and is not drawn again. */
    const lastDrawn = new Map();
    function changed(name, value) {
      const key = JSON.stringify(value ?? null);
      if (lastDrawn.get(name) === key) return false;
      lastDrawn.set(name, key);
      return true;
    }

    function drawStats() {
      const s = shown().stats;
      if (!changed("stats", s)) return;
      const rows = [["mean", valueText(s.mean)], ["std", valueText(s.std)], ["min", valueText(s.min)],
        ["max", valueText(s.max)], ["zeros", percentText(s.zero_fraction)], ["images", String(s.images ?? 0)]];
      stats.replaceChildren(...rows.flatMap(([name, value]) => [
        h("span", { class: "cnnw-cc-muted", text: name }), h("span", { class: `cnnw-cc-stat-${name}`, text: value }),
      ]));
      dead.hidden = !s.dead;
      dead.textContent = s.dead
        ? `Dead on this data: the channel is ${valueText(s.max)} at every position of all ${s.images} images seen.`
        : "";
      root.dataset.dead = String(Boolean(s.dead));
    }

    function drawPartial() {
      const source = shown();
      const isPartial = source.partial;
      partial.hidden = !isPartial;
      // While the pass runs, what is shown is the pass so far, not a pass that stopped (new-user trial: the card
      // said "stopped after 128 images" while its progress bar moved).
      const seen = source.images;
      partial.textContent = !isPartial ? ""
        : model.get("running") ? `So far: the top examples and statistics of the first ${seen} images (the pass ` +
          "over the data set is running)."
        : `Partial: the pass over the data set stopped after ${seen} images; the top examples and statistics are ` +
          "of those images only (Compute to finish it).";
      root.dataset.partial = String(isPartial);
    }

    /** The theme's brand colour, read once it is there: reading a computed style in a redraw that follows other
     * DOM changes forced a style recalculation of the page (7 ms of a channel click in the Explorer). */
    let brand = "";
    function barColour() {
      brand ||= getComputedStyle(root).getPropertyValue("--jp-brand-color1").trim();
      return brand || "#1976d2";
    }

    function drawHistogram() {
      const hist = shown().histogram;
      if (!changed("histogram", hist)) return;
      const counts = hist.counts ?? [];
      const ctx = histCanvas.getContext("2d");
      ctx.clearRect(0, 0, HIST_W, HIST_H);
      if (!counts.length || hist.lo == null) {
        histCaption.textContent = "";
        return;
      }
      const heights = histogramHeights(counts);
      const w = HIST_W / counts.length;
      ctx.fillStyle = barColour();
      heights.forEach((f, i) => {
        const bh = Math.max(f > 0 ? 1 : 0, Math.round(f * (HIST_H - 2)));
        ctx.fillRect(i * w, HIST_H - bh, Math.max(1, w - 1), bh);
      });
      // lo … hi holds every finite value the pass saw (its min and max); NaN or infinite values are left out
      const left = hist.not_finite ? `; ${hist.not_finite} not finite (NaN or infinite), left out` : "";
      histCaption.textContent = `values over the data set, ${valueText(hist.lo)} … ${valueText(hist.hi)} ` +
        `(√ count)${left}`;
    }

    function drawClasses() {
      const support = shown().support;
      if (!changed("classes", support)) return;
      const rows = supportRows(support);
      classesBox.hidden = rows.length === 0;
      classes.replaceChildren(...rows.flatMap((r, i) => {
        const barEl = h("div", { class: "cnnw-cc-bar", "data-top": String(i === 0) });
        barEl.style.width = `${(100 * r.width).toFixed(1)}%`;
        return [h("span", { class: "cnnw-cc-class-name", text: r.name, title: r.name }),
          h("div", {}, [barEl]),
          h("span", { class: "cnnw-cc-muted", text: `${valueText(r.mean)} (${r.count})` })];
      }));
    }

    function drawRunning() {
      const running = Boolean(model.get("running"));
      cancelButton.disabled = !running;
      root.dataset.running = String(running);
    }

    // ---- controls ----
    layer.addEventListener("change", () => save({ layer: layer.value }));
    commitOnEnter(channel, () => save({ channel: channel.value === "" ? null : Number(channel.value) }));
    commitOnEnter(k, () => save({ k: k.value === "" ? null : Number(k.value) }));
    computeButton.addEventListener("click", () => model.send({ action: "compute" }));
    cancelButton.addEventListener("click", () => model.send({ action: "cancel" }));

    // the layer, channel and k select what shown() draws (the traits, or what was sent ahead)
    const SELECTION = ["layer", "channel", "k"];
    const { dispose, schedule } = react(model, [
      [fillLayers, ["layers"]],
      [syncControls, ["layer", "channel", "k"]],
      [drawPatches, ["patches", "patches_meta", "images", ...SELECTION]],
      [drawFv, ["fv_pixels", "fv_meta", "running", "feature_vis"]],
      [drawStats, ["stats", "patches_meta", ...SELECTION]],
      [drawPartial, ["partial", "images", "running", "patches_meta", ...SELECTION]],
      [drawHistogram, ["histogram", "patches_meta", ...SELECTION]],
      [drawClasses, ["class_support", "patches_meta", ...SELECTION]],
      [drawProgress, PROGRESS_TRAITS],
      [drawRunning, ["running"]],
      [showError, ["error"]],
      [showWarning, ["warning"]],
      [showsText(model, "status", status), ["status"]],
    ]);
    model.on("msg:custom", onCustom);
    // the layer's channels, if the kernel has them (a view made after they were sent); no kernel, no question
    if (kernelLive(model)) model.send({ action: LAYER_ACTION });
    return () => {
      model.off("msg:custom", onCustom);
      dispose();
    };
  },
};
