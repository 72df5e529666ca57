// The DatasetExamples view: every channel of a layer as a tile showing the data-set patch that excites it most and
// its top activation, a page at a time; a click (or Enter) on a tile selects the channel, and the ChannelCard the
// widget opens for it is mounted below the tiles. Python sends a page's patches as one uint8 RGBA buffer. Model text
// (layer names) reaches the page through textContent and option text only.
import {
  baseStyle, errorBox, h, mountWidget, PROGRESS_TRAITS, progressBar, react, setOptions, showsText, warningBox,
} from "./dom.js";
import { zoomFor } from "./images.js";
import { patchesComplete, patchImg, valueText } from "./patches.js";
import { bytesOf } from "./tiles.js";

const TILE_PX = 56;

const STYLE = baseStyle("cnnw-de") + `
.cnnw-de { display: flex; flex-direction: column; gap: 8px; padding: 4px 0; min-width: 0; }
.cnnw-de .cnnw-de-row { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 14px; }
.cnnw-de .cnnw-de-layer { width: 100%; max-width: 18em; min-width: 0; }
.cnnw-de button { padding: 1px 10px; }
.cnnw-de button:disabled { opacity: 0.4; }
.cnnw-de .cnnw-de-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-de .cnnw-de-partial { padding: 4px 8px; border-left: 3px solid var(--jp-warn-color1, #f57c00);
  background: var(--jp-layout-color2, #eeeeee); }
.cnnw-de .cnnw-de-tiles { display: flex; flex-wrap: wrap; gap: 6px; }
.cnnw-de .cnnw-de-tile { margin: 0; padding: 2px; display: flex; flex-direction: column; align-items: center; gap: 2px;
  cursor: pointer; border: 2px solid transparent; border-radius: 3px; }
.cnnw-de .cnnw-de-tile:hover { border-color: var(--jp-border-color1, #bdbdbd); }
.cnnw-de .cnnw-de-tile[aria-pressed="true"] { border-color: var(--jp-brand-color1, #1976d2); }
.cnnw-de .cnnw-de-tile[data-dead="true"] img { opacity: 0.35; }
.cnnw-de .cnnw-de-tile img { image-rendering: pixelated;
  background: repeating-conic-gradient(#ccc 0 25%, #fff 0 50%) 0 0 / 8px 8px; }
.cnnw-de .cnnw-de-caption { font-size: var(--jp-ui-font-size0, 11px); white-space: nowrap; max-width: 9em;
  overflow: hidden; text-overflow: ellipsis; }
.cnnw-de .cnnw-de-card { min-width: 0; }
`;

export default {
  render({ model, el }) {
    const layer = h("select", { class: "cnnw-de-layer" });
    const prev = h("button", { class: "cnnw-de-prev", type: "button", text: "‹ prev" });
    const next = h("button", { class: "cnnw-de-next", type: "button", text: "next ›" });
    const pageInfo = h("span", { class: "cnnw-de-page-info" });
    const computeButton = h("button", { class: "cnnw-de-compute", type: "button", text: "Compute" });
    const cancelButton = h("button", { class: "cnnw-de-cancel", type: "button", text: "Cancel" });
    const [progress, drawProgress] = progressBar(model);
    const status = h("span", { class: "cnnw-de-status cnnw-de-muted", "aria-live": "polite" });
    const [error, showError] = errorBox(model);
    const [warning, showWarning] = warningBox(model);
    const partial = h("div", { class: "cnnw-de-partial", role: "status", hidden: true });
    const caption = h("div", { class: "cnnw-de-muted cnnw-de-title" });
    const tiles = h("div", { class: "cnnw-de-tiles" });
    const card = h("div", { class: "cnnw-de-card" });
    const root = h("div", { class: "cnnw-de" }, [
      h("style", { text: STYLE }),
      h("div", { class: "cnnw-de-row" }, [
        h("label", {}, ["Layer", layer]), prev, pageInfo, next, computeButton, cancelButton, progress, status,
      ]),
      error,
      warning,
      partial,
      caption,
      tiles,
      card,
    ]);
    el.replaceChildren(root);
    const unmount = mountWidget(model, "card", card);

    function save(values) {
      for (const [name, value] of Object.entries(values)) model.set(name, value);
      model.save_changes();
    }

    function fillLayers() {
      setOptions(layer, (model.get("layers") ?? []).map((l) => [l.name, `${l.name} (${l.channels})`]));
      layer.value = model.get("layer");
    }

    function drawPager() {
      const page = model.get("page");
      const pages = model.get("pages");
      layer.value = model.get("layer");
      pageInfo.textContent = `page ${page + 1} of ${pages}`;
      prev.disabled = page <= 0;
      next.disabled = page >= pages - 1;
    }

    function select(channel) {
      save({ channel });
    }

    function drawTiles() {
      const meta = model.get("tiles_meta") ?? {};
      const bytes = bytesOf(model.get("tiles"));
      const selected = model.get("channel");
      const whole = Boolean(meta.whole_image);
      const by = whole ? "value" : meta.score === "mean" ? "mean" : "max";
      const size = whole && meta.input ? `${meta.input[0]}×${meta.input[1]} px` : "";
      const shown = whole && meta.input && (meta.h !== meta.input[0] || meta.w !== meta.input[1])
        ? `, shown at ${meta.h}×${meta.w}` : "";
      caption.textContent = !meta.n ? ""
        : whole
          ? `Each unit's top image over ${model.get("images")} images and its value: the whole image ` +
            `(${size}${shown}), since a unit of this layer sees all of it; click a unit for its card.`
          : `Each channel's top image over ${model.get("images")} images (the input under the receptive field of the ` +
            `unit that fired most) and its ${by} activation; click a channel for its card.`;
      if (!patchesComplete(bytes, meta)) {
        tiles.replaceChildren();
        tiles.dataset.n = "0";
        return;
      }
      const zoom = zoomFor(Math.max(meta.h, meta.w), TILE_PX);
      const figures = [];
      for (let i = 0; i < meta.n; i++) {
        const c = meta.channels[i];
        // an empty slot (a channel with no example yet) is an image without a source: nothing drawn
        const picture = meta.indices[i] >= 0 ? patchImg(bytes, meta, i) : h("img", { alt: "" });
        picture.style.width = `${meta.w * zoom}px`;
        picture.style.height = `${meta.h * zoom}px`;
        const deadText = meta.dead[i] ? " · dead" : "";
        const name = meta.names ? meta.names[i] : null; // the output unit's class name (text)
        const nameText = name != null ? ` · ${name}` : "";
        const figure = h("figure", {
          class: "cnnw-de-tile", role: "button", tabIndex: 0, "aria-pressed": String(c === selected),
          "data-channel": String(c), "data-dead": String(Boolean(meta.dead[i])),
          title: `${whole ? "unit" : "channel"} ${c}${name != null ? ` (${name})` : ""}: ${by} ` +
            `${valueText(meta.values[i])} in image ${meta.indices[i]}` +
            (meta.dead[i] ? " (dead on this data: one value everywhere)" : ""),
        }, [picture, h("figcaption", { class: "cnnw-de-caption",
          text: `${c}${nameText} · ${valueText(meta.values[i])}${deadText}` })]);
        figure.addEventListener("click", () => select(c));
        figure.addEventListener("keydown", (event) => {
          if (event.key !== "Enter" && event.key !== " ") return;
          event.preventDefault();
          event.stopPropagation();
          select(c);
        });
        figures.push(figure);
      }
      tiles.replaceChildren(...figures);
      tiles.dataset.n = String(meta.n);
      tiles.dataset.page = String(meta.page);
      root.dataset.layer = meta.layer ?? "";
    }

    function drawSelection() {
      const selected = model.get("channel");
      root.dataset.channel = String(selected);
      for (const tile of tiles.children) {
        tile.setAttribute("aria-pressed", String(Number(tile.dataset.channel) === selected));
      }
    }

    function drawPartial() {
      const isPartial = Boolean(model.get("partial"));
      partial.hidden = !isPartial;
      // While the pass runs, the tiles are the pass so far, not a pass that stopped (new-user trial: the list said
      // "stopped after 8320 images" while its progress bar moved; the card already said "So far").
      const seen = model.get("images");
      partial.textContent = !isPartial ? ""
        : model.get("running") ? `So far: the best of the first ${seen} images (the pass over the data set is ` +
          "running)."
        : `Partial: the pass over the data set stopped after ${seen} images; the tiles show the best of those ` +
          "images only (Compute to finish it).";
      root.dataset.partial = String(isPartial);
    }

    function drawRunning() {
      const running = Boolean(model.get("running"));
      cancelButton.disabled = !running;
      root.dataset.running = String(running);
    }

    layer.addEventListener("change", () => save({ layer: layer.value }));
    prev.addEventListener("click", () => save({ page: Math.max(0, model.get("page") - 1) }));
    next.addEventListener("click", () => save({ page: model.get("page") + 1 }));
    computeButton.addEventListener("click", () => model.send({ action: "compute" }));
    cancelButton.addEventListener("click", () => model.send({ action: "cancel" }));

    const { dispose } = react(model, [
      [fillLayers, ["layers"]],
      [drawPager, ["page", "pages", "layer"]],
      [drawTiles, ["tiles", "tiles_meta", "images"]],
      [drawSelection, ["channel", "tiles_meta"]],
      [drawPartial, ["partial", "images", "running"]],
      [drawProgress, PROGRESS_TRAITS],
      [drawRunning, ["running"]],
      [showError, ["error"]],
      [showWarning, ["warning"]],
      [showsText(model, "status", status), ["status"]],
    ]);
    return () => {
      dispose();
      unmount();
    };
  },
};
