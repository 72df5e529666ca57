// The RobustnessView view: the epsilon slider (and a box to type an exact value), attack, norm, steps, target and
// image pickers; the clean image, the adversarial image and the perturbation amplified to be seen, side by side,
// each with its predictions; the Grad-CAM of both; the layer-divergence chart and the accuracy-against-epsilon
// curve (bqplot figures held in the model's traits). Python sends uint8 RGB images and the two CAMs quantized over
// their own ranges; nothing here computes a model result. Model text (class names, messages) only reaches the
// page through textContent and option text.
import { colormap } from "./colormaps.js";
import {
  baseStyle, commitOnEnter, errorBox, h, mountWidget, PROGRESS_TRAITS, progressBar, react, setOptions, showsText,
  warningBox,
} from "./dom.js";
import { heatLut } from "./heatmaps.js";
import { bytesOf, floatsOf, paintIndexed, paintRGB, tileScale } from "./tiles.js";
import { colorBar } from "./colorbar.js";

const IMAGE_PX = 160; // each picture is zoomed by a whole factor to at least this many pixels a side
const CAM_ALPHA = 0.55;

const STYLE = baseStyle("cnnw-rv", ["select", "input", "button"]) + `
.cnnw-rv-outer { display: flex; flex-wrap: wrap; align-items: flex-start; gap: 8px; min-width: 0; }
.cnnw-rv-outer > .cnnw-rv { flex: 1 1 480px; }
.cnnw-rv-outer > .cnnw-rv-charts { display: flex; flex-direction: column; flex: 0 1 520px; min-width: 0; }
.cnnw-rv { display: flex; flex-direction: column; gap: 8px; padding: 4px 0; min-width: 0; }
.cnnw-rv .cnnw-rv-row { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
.cnnw-rv .cnnw-rv-target { max-width: 16em; min-width: 0; }
.cnnw-rv .cnnw-rv-slider { width: 220px; max-width: 100%; }
.cnnw-rv .cnnw-rv-epsilon-input { width: 7em; }
.cnnw-rv .cnnw-rv-steps { width: 5em; }
.cnnw-rv button { padding: 1px 10px; }
.cnnw-rv button:disabled { opacity: 0.4; }
.cnnw-rv .cnnw-rv-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-rv .cnnw-rv-pictures { display: flex; flex-wrap: wrap; gap: 10px; }
.cnnw-rv .cnnw-rv-picture { margin: 0; display: flex; flex-direction: column; align-items: center; gap: 2px;
  max-width: 100%; }
.cnnw-rv .cnnw-rv-canvas { image-rendering: pixelated; max-width: 100%; background: var(--jp-layout-color2, #eee); }
.cnnw-rv .cnnw-rv-caption { font-weight: 600; max-width: ${IMAGE_PX + 40}px; text-align: center; }
.cnnw-rv .cnnw-rv-preds { margin: 0; padding: 0; list-style: none; font-size: var(--jp-ui-font-size0, 11px);
  max-width: ${IMAGE_PX + 40}px; }
.cnnw-rv .cnnw-rv-preds li { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.cnnw-rv .cnnw-rv-preds li[data-top="true"] { font-weight: 600; }
.cnnw-rv .cnnw-rv-verdict[data-success="true"] { color: var(--jp-error-color1, #d32f2f); font-weight: 600; }
`;

/** "8/255 (0.0314)" for an L-inf epsilon below 1 that is a whole number of 255ths, else the number: the fraction
 * shown is the number it names, so typing it back in the box (parseEpsilon) gives the same value. */
export function epsilonText(value, norm) {
  if (!Number.isFinite(value)) return String(value);
  if (norm === "inf" && value > 0 && value < 1) {
    const levels = value * 255;
    if (Math.abs(levels - Math.round(levels)) < 1e-6) return `${Math.round(levels)}/255 (${value.toPrecision(3)})`;
  }
  return value.toPrecision(3);
}

/** The number a person typed in the epsilon box: a decimal ("0.02", "1e-2") or a fraction "a/b" ("8/255"); null
 * for anything else (sent as typed, for the kernel to refuse with what it expects). Parsing text, not model logic. */
export function parseEpsilon(text) {
  const t = String(text).trim();
  const number = /^[+-]?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i;
  const parts = t.split("/");
  if (parts.length === 2 && number.test(parts[0].trim()) && number.test(parts[1].trim())) {
    const value = Number(parts[0]) / Number(parts[1]);
    return Number.isFinite(value) ? value : null;
  }
  return number.test(t) ? Number(t) : null;
}

/** What the verdict adds when a shown prediction is a tie (Python's shown.clean_tied / adv_tied). */
function tieText(shown) {
  const parts = [];
  if (shown.clean_tied?.length) parts.push(`the clean image's top ${shown.clean_tied.length} classes are tied`);
  if (shown.adv_tied?.length) parts.push(`the adversarial image's top ${shown.adv_tied.length} classes are tied`);
  return parts.length ? ` (${parts.join(" and ")} within 0.1%: the class shown is the first of them)` : "";
}

export default {
  render({ model, el }) {
    // ---- DOM ----
    const image = h("select", { class: "cnnw-rv-image" });
    const attack = h("select", { class: "cnnw-rv-attack" });
    setOptions(attack, [["pgd", "PGD"], ["fgsm", "FGSM"]]);
    const norm = h("select", { class: "cnnw-rv-norm" });
    setOptions(norm, [["inf", "L∞"], ["2", "L2"]]);
    const steps = h("input", { class: "cnnw-rv-steps", type: "number", min: 1, step: 1 });
    const target = h("select", { class: "cnnw-rv-target" });
    const slider = h("input", { class: "cnnw-rv-slider", type: "range", min: 0 });
    const epsilonInput = h("input", { class: "cnnw-rv-epsilon-input", type: "text", "aria-label": "epsilon" });
    const epsilonText_ = h("span", { class: "cnnw-rv-epsilon-value cnnw-rv-muted" });
    const cancelButton = h("button", { class: "cnnw-rv-cancel", type: "button", text: "Cancel" });
    const [progress, drawProgress] = progressBar(model); // {what, done, total}: done / total
    const status = h("span", { class: "cnnw-rv-status cnnw-rv-muted", "aria-live": "polite" });
    const [error, showError] = errorBox(model);
    const [warning, showWarning] = warningBox(model);
    const verdict = h("div", { class: "cnnw-rv-verdict" });

    function picture(kind, caption) {
      const canvas = h("canvas", { class: `cnnw-rv-canvas cnnw-rv-${kind}`, width: IMAGE_PX, height: IMAGE_PX });
      const label = h("div", { class: "cnnw-rv-caption", text: caption });
      const preds = h("ul", { class: "cnnw-rv-preds" });
      const figure = h("figure", { class: "cnnw-rv-picture", "data-kind": kind }, [canvas, label, preds]);
      return { canvas, label, preds, figure };
    }
    const clean = picture("clean", "clean");
    const adversarial = picture("adversarial", "adversarial");
    const perturbation = picture("perturbation", "perturbation");
    const camClean = picture("cam-clean", "Grad-CAM, clean");
    const camAdv = picture("cam-adversarial", "Grad-CAM, adversarial");

    const root = h("div", { class: "cnnw-rv" }, [
      h("style", { text: STYLE }),
      h("div", { class: "cnnw-rv-row" }, [
        h("label", {}, ["Image", image]), h("label", {}, ["Attack", attack]), h("label", {}, ["Norm", norm]),
        h("label", {}, ["Steps", steps]), h("label", {}, ["Target", target]),
      ]),
      h("div", { class: "cnnw-rv-row" }, [
        h("label", {}, ["ε", slider]), epsilonInput, epsilonText_, cancelButton, progress, status,
      ]),
      error,
      warning,
      verdict,
      h("div", { class: "cnnw-rv-pictures" }, [clean.figure, adversarial.figure, perturbation.figure]),
      h("div", { class: "cnnw-rv-pictures" }, [camClean.figure, camAdv.figure]),
    ]);
    const charts = h("div", { class: "cnnw-rv-charts" }, [h("div", { class: "cnnw-rv-divergence" }), h("div")]);
    el.replaceChildren(h("div", { class: "cnnw-rv-outer" }, [root, charts]));
    const unmount = ["divergence_chart", "curve_chart"].map((name, i) => mountWidget(model, name, charts.children[i]));

    function save(values) {
      for (const [name, value] of Object.entries(values)) model.set(name, value);
      model.save_changes();
    }

    // ---- drawing ----
    function size() {
      const [hgt, wid] = model.get("image_shape") ?? [0, 0];
      return { hgt, wid };
    }

    function drawRGB(target_, bytes) {
      const { hgt, wid } = size();
      const data = bytesOf(bytes);
      if (!hgt || data.length < hgt * wid * 3) return false;
      const zoom = tileScale(hgt, wid, IMAGE_PX);
      target_.canvas.width = wid * zoom;
      target_.canvas.height = hgt * zoom;
      const ctx = target_.canvas.getContext("2d");
      const out = ctx.createImageData(target_.canvas.width, target_.canvas.height);
      paintRGB(out, { x: 0, y: 0, w: out.width, h: out.height }, { data, w: wid, h: hgt });
      ctx.putImageData(out, 0, 0);
      return true;
    }

    function drawCam(target_, picture_, cams, ranges, i) {
      const { hgt, wid } = size();
      const data = bytesOf(picture_);
      if (!hgt || data.length < hgt * wid * 3 || cams.length < 2 * hgt * wid || ranges.length < 4) return;
      const zoom = tileScale(hgt, wid, IMAGE_PX);
      target_.canvas.width = wid * zoom;
      target_.canvas.height = hgt * zoom;
      const ctx = target_.canvas.getContext("2d");
      const out = ctx.createImageData(target_.canvas.width, target_.canvas.height);
      const rect = { x: 0, y: 0, w: out.width, h: out.height };
      paintRGB(out, rect, { data, w: wid, h: hgt });
      const lo = ranges[2 * i];
      const hi = ranges[2 * i + 1];
      const lut = heatLut(lo, hi, "positive", Math.max(hi, 0));
      const map = cams.subarray(i * hgt * wid, (i + 1) * hgt * wid);
      paintIndexed(out, rect, { data: map, w: wid, h: hgt }, colormap("magma"), lut, CAM_ALPHA);
      ctx.putImageData(out, 0, 0);
      if (!target_.bar) {  // the Grad-CAM's colours in its own values, under the picture
        target_.bar = colorBar("cnnw-rv-bar");
        target_.canvas.after(target_.bar.node);
      }
      target_.bar.update({ table: colormap("magma"), lo: 0, hi: Math.max(hi, 0), label: "Grad-CAM" });
    }

    function drawClean() {
      drawRGB(clean, model.get("clean_image"));
    }

    function predictionList(list, preds, top) {
      list.replaceChildren(...(preds ?? []).map((p) =>
        h("li", { text: `${p.label} — ${(100 * p.p).toFixed(1)}%`, "data-top": String(p.index === top) })));
    }

    function drawAttack() {
      const shown = model.get("shown") ?? {};
      if (shown.epsilon == null) return;
      const drawn = drawRGB(adversarial, model.get("adv_image"));
      drawRGB(perturbation, model.get("perturbation_image"));
      const cams = bytesOf(model.get("cam_bytes"));
      const ranges = floatsOf(model.get("cam_ranges"));
      drawCam(camClean, model.get("clean_image"), cams, ranges, 0);
      drawCam(camAdv, model.get("adv_image"), cams, ranges, 1);
      const preds = model.get("predictions") ?? {};
      predictionList(clean.preds, preds.clean, shown.clean_class);
      predictionList(adversarial.preds, preds.adversarial, shown.adv_class);
      const eps = epsilonText(shown.epsilon, shown.norm);
      const name = shown.attack === "fgsm" ? "FGSM" : `PGD-${shown.steps}`;
      adversarial.label.textContent = `adversarial: ${name}, ${shown.norm === "inf" ? "L∞" : "L2"} ε ${eps}`;
      perturbation.label.textContent = shown.amplification > 0
        ? `perturbation ×${shown.amplification.toFixed(1)} (L∞ ${shown.linf.toPrecision(3)}, L2 ${shown.l2.toPrecision(3)})`
        : "perturbation: none";
      camClean.label.textContent = `Grad-CAM, clean: ${shown.clean_label}`;
      camAdv.label.textContent = `Grad-CAM, adversarial: ${shown.adv_label}`;
      verdict.textContent = shown.target != null
        ? (shown.success ? `reached the target ${shown.target_label}` : `did not reach the target ${shown.target_label}`)
          + `: the model now says ${shown.adv_label}`
        : (shown.success ? `the prediction changed: ${shown.clean_label} → ${shown.adv_label}`
          : `the prediction held: ${shown.clean_label}`) + tieText(shown);
      verdict.dataset.tied = String(Boolean(shown.clean_tied?.length || shown.adv_tied?.length));
      verdict.dataset.success = String(Boolean(shown.success));
      if (drawn) {
        root.dataset.epsilon = String(shown.epsilon);
        root.dataset.attack = shown.attack;
        root.dataset.norm = shown.norm;
        root.dataset.image = String(shown.image_index);
        root.dataset.drawn = String(Number(root.dataset.drawn ?? 0) + 1);
      }
    }

    function fillImages() {
      const n = model.get("n_images") ?? 1;
      setOptions(image, Array.from({ length: n }, (_, i) => [i, `image ${i}`]));
      image.value = String(model.get("image_index"));
    }

    function fillTargets() {
      const names = model.get("class_names") ?? [];
      setOptions(target, [["", "untargeted"], ...names.map((name, i) => [i, `→ ${name}`])]);
      const t = model.get("target");
      target.value = t == null ? "" : String(t);
    }

    function syncControls() {
      image.value = String(model.get("image_index"));
      attack.value = model.get("attack");
      norm.value = model.get("norm");
      steps.value = String(model.get("steps"));
      steps.disabled = model.get("attack") === "fgsm";
      const t = model.get("target");
      target.value = t == null ? "" : String(t);
      const top = model.get("epsilon_max");
      const step = model.get("epsilon_step");
      slider.max = String(top);
      slider.step = String(step);
      const eps = Number(model.get("epsilon")); // a typed value the kernel is about to refuse may be a string
      slider.value = String(Math.min(eps, top));
      if (document.activeElement !== epsilonInput && Number.isFinite(eps)) {
        epsilonInput.value = String(Number(eps.toPrecision(6)));
      }
      epsilonText_.textContent = `= ${epsilonText(eps, model.get("norm"))}`;
    }

    function drawRunning() {
      const running = model.get("running");
      cancelButton.disabled = !running;
      root.dataset.running = String(running);
    }

    const showStatus = showsText(model, "status", status);

    // ---- controls ----
    image.addEventListener("change", () => save({ image_index: Number(image.value) }));
    attack.addEventListener("change", () => save({ attack: attack.value }));
    norm.addEventListener("change", () => save({ norm: norm.value }));
    commitOnEnter(steps, () => save({ steps: Number(steps.value) }));
    target.addEventListener("change", () => save({ target: target.value === "" ? null : Number(target.value) }));
    // The slider names its value as it moves; the attack starts when it is let go (one job, not one per pixel).
    slider.addEventListener("input", () => {
      epsilonText_.textContent = `= ${epsilonText(Number(slider.value), model.get("norm"))}`;
    });
    slider.addEventListener("change", () => save({ epsilon: Number(slider.value) }));
    // A typed number or fraction ("8/255") goes to the kernel as a number; other text goes as typed, to be
    // refused there (with what is expected) and shown in the error box.
    commitOnEnter(epsilonInput, () => {
      const text = epsilonInput.value.trim();
      const value = parseEpsilon(text);
      save({ epsilon: value === null ? text : value });
    });
    cancelButton.addEventListener("click", () => model.send({ action: "cancel" }));

    // ---- trait changes ----
    const reactions = [
      [fillImages, ["n_images"]],
      [fillTargets, ["class_names"]],
      [syncControls, ["image_index", "attack", "norm", "steps", "target", "epsilon", "epsilon_max", "epsilon_step"]],
      [drawClean, ["clean_image", "image_shape"]],
      [drawAttack, ["adv_image", "perturbation_image", "cam_bytes", "cam_ranges", "predictions", "shown"]],
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
