// The Explorer view: a layer list (model order, nested models indented), an image strip, the selected channel and
// class, and one collapsible section per panel, each holding another widget's own view (mounted as ipywidgets'
// boxes mount their children). The shared selection lives in the Explorer's traits; clicks here write them back.
// Layout follows the width the view is given (a CSS container query): stacked in a narrow sidebar, the lists
// beside the panels and the panels side by side in a wide area. Model text (layer and class names) reaches the
// page through textContent, option text and attributes only, never as HTML.
import {
  baseStyle, commitOnEnter, errorBox, h, kernelLive, mountWidget, pictureImg, react, setOptions, showsText, warningBox,
} from "./dom.js";
import { bytesOf, paintRGB } from "./tiles.js";

const THUMB_PX = 48; // a thumbnail's size on the page

const STYLE = baseStyle("cnnw-explorer") + `
.cnnw-explorer { container: cnnw-explorer / inline-size; min-width: 0; }
.cnnw-explorer .cnnw-x-main { display: flex; flex-direction: column; gap: 8px; min-width: 0; }
.cnnw-explorer .cnnw-x-nav { display: flex; flex-direction: column; gap: 6px; min-width: 0; }
.cnnw-explorer .cnnw-x-panels { display: flex; flex-direction: column; gap: 8px; min-width: 0; }
@container cnnw-explorer (min-width: 900px) {
  .cnnw-explorer .cnnw-x-main { flex-direction: row; align-items: flex-start; }
  .cnnw-explorer .cnnw-x-nav { flex: 0 0 240px; width: 240px; position: sticky; top: 0; }
  .cnnw-explorer .cnnw-x-panels { flex: 1 1 0; display: grid; align-items: start;
    grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); }
}
.cnnw-explorer .cnnw-x-title { font-weight: 600; }
.cnnw-explorer .cnnw-muted { color: var(--jp-ui-font-color2, #616161); }
.cnnw-explorer .cnnw-x-layers { max-height: 220px; overflow-y: auto; border: 1px solid var(--jp-border-color2, #e0e0e0);
  display: flex; flex-direction: column; }
.cnnw-explorer .cnnw-x-layer { display: flex; justify-content: space-between; gap: 6px; text-align: left;
  border: none; background: none; padding: 1px 4px; cursor: pointer; font: inherit; color: inherit; min-width: 0; }
.cnnw-explorer .cnnw-x-group { padding: 1px 4px; font-style: italic; }
.cnnw-explorer .cnnw-x-layer:hover { background: var(--jp-layout-color2, #eeeeee); }
.cnnw-explorer .cnnw-x-layer[aria-pressed="true"] { background: var(--jp-brand-color3, #bbdefb); }
.cnnw-explorer .cnnw-x-layer .cnnw-x-name { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
.cnnw-explorer .cnnw-x-layer .cnnw-x-shape { flex: 0 0 auto; color: var(--jp-ui-font-color2, #616161);
  font-variant-numeric: tabular-nums; }
.cnnw-explorer .cnnw-x-strip { display: flex; gap: 4px; overflow-x: auto; padding-bottom: 4px; contain: inline-size; }
.cnnw-explorer .cnnw-x-thumb { flex: 0 0 auto; display: flex; flex-direction: column; align-items: center; gap: 1px;
  width: 60px; padding: 2px; border: 2px solid transparent; background: none; cursor: pointer; font: inherit;
  color: inherit; }
.cnnw-explorer .cnnw-x-thumb[aria-pressed="true"] { border-color: var(--jp-brand-color1, #1976d2); }
.cnnw-explorer .cnnw-x-thumb img { width: ${THUMB_PX}px; height: ${THUMB_PX}px; image-rendering: pixelated; }
.cnnw-explorer .cnnw-x-thumb span { max-width: 100%; overflow: hidden; text-overflow: ellipsis; white-space: nowrap;
  font-size: var(--jp-ui-font-size0, 11px); }
.cnnw-explorer .cnnw-x-row { display: flex; flex-wrap: wrap; align-items: center; gap: 4px 12px; }
.cnnw-explorer .cnnw-x-row select { max-width: 100%; min-width: 0; }
.cnnw-explorer input[type="number"] { width: 4.5em; }
.cnnw-explorer .cnnw-x-panel { border: 1px solid var(--jp-border-color2, #e0e0e0); border-radius: 2px; min-width: 0; }
.cnnw-explorer .cnnw-x-toggle { display: block; width: 100%; text-align: left; font: inherit; font-weight: 600;
  color: inherit; background: var(--jp-layout-color2, #eeeeee); border: none; padding: 3px 6px; cursor: pointer; }
.cnnw-explorer .cnnw-x-toggle::before { content: "▸ "; }
.cnnw-explorer .cnnw-x-toggle[aria-expanded="true"]::before { content: "▾ "; }
.cnnw-explorer .cnnw-x-body { padding: 4px; min-width: 0; overflow-x: auto; }
.cnnw-explorer .cnnw-x-notes { margin: 0; padding-left: 1.2em; font-size: var(--jp-ui-font-size0, 11px); }
`;

/** "32×32×32" from [32, 32, 32]; unknown dimensions as "?". */
function shapeText(shape) {
  return Array.isArray(shape) ? shape.map((d) => d ?? "?").join("×") : "";
}

export default {
  render({ model, el }) {
    // ---- DOM ----
    const [error, showError] = errorBox(model);
    const [warning, showWarning] = warningBox(model);
    const status = h("span", { class: "cnnw-x-status cnnw-muted", "aria-live": "polite" });
    const layerList = h("div", { class: "cnnw-x-layers", role: "listbox", "aria-label": "layers" });
    const strip = h("div", { class: "cnnw-x-strip", role: "group", "aria-label": "images" });
    const imageInput = h("input", { class: "cnnw-x-image", type: "number", min: 0, step: 1 });
    const imageCount = h("span", { class: "cnnw-muted" });
    const channelInput = h("input", { class: "cnnw-x-channel", type: "number", min: -1, step: 1 });
    const channelCount = h("span", { class: "cnnw-muted" });
    const targetSelect = h("select", { class: "cnnw-x-target" });
    const notes = h("ul", { class: "cnnw-x-notes cnnw-muted" });
    const panels = h("div", { class: "cnnw-x-panels" });
    const nav = h("div", { class: "cnnw-x-nav" }, [
      h("div", { class: "cnnw-x-title", text: "Layers" }),
      layerList,
      h("div", { class: "cnnw-x-row" }, [
        h("label", {}, ["Channel", channelInput, channelCount]),
      ]),
      h("div", { class: "cnnw-x-title", text: "Images" }),
      strip,
      h("div", { class: "cnnw-x-row" }, [
        h("label", {}, ["Image", imageInput, imageCount]),
        h("label", {}, ["Class", targetSelect]),
      ]),
      status,
      notes,
    ]);
    const root = h("div", { class: "cnnw-explorer" }, [
      h("style", { text: STYLE }), error, warning, h("div", { class: "cnnw-x-main" }, [nav, panels]),
    ]);
    el.replaceChildren(root);

    function save(name, value) {
      model.set(name, value);
      model.save_changes();
    }

    // ---- the layer list ----
    function fillLayers() {
      const rows = [];
      let group = [];
      for (const layer of model.get("layers") ?? []) {
        // A nested model's layers come under a heading row of its name (each level once), indented one step more.
        const parts = layer.path.split("/").slice(0, -1);
        parts.forEach((part, depth) => {
          const prefix = parts.slice(0, depth + 1).join("/");
          if (group.slice(0, depth + 1).join("/") === prefix) return;
          const heading = h("div", { class: "cnnw-x-group cnnw-muted", text: part, title: prefix });
          heading.style.paddingLeft = `${4 + 12 * depth}px`;
          rows.push(heading);
        });
        group = parts;
        const item = h("button", {
          class: "cnnw-x-layer", type: "button", role: "option", title: `${layer.path} (${layer.cls})`,
          "data-layer": layer.path,
        }, [h("span", { class: "cnnw-x-name", text: layer.name }), h("span", { class: "cnnw-x-shape",
          text: shapeText(layer.shape) })]);
        item.style.paddingLeft = `${4 + 12 * (layer.depth ?? 0)}px`;
        rows.push(item);
      }
      layerList.replaceChildren(...rows);
      showLayer();
    }

    function showLayer() {
      const current = model.get("layer");
      root.dataset.layer = current;
      for (const item of layerList.querySelectorAll(".cnnw-x-layer")) {
        const on = item.dataset.layer === current;
        item.setAttribute("aria-pressed", String(on));
        item.setAttribute("aria-selected", String(on));
        if (on) {
          const top = item.offsetTop - layerList.offsetTop;
          if (top < layerList.scrollTop || top + item.offsetHeight > layerList.scrollTop + layerList.clientHeight) {
            layerList.scrollTop = top - layerList.clientHeight / 2;
          }
        }
      }
      const layer = (model.get("layers") ?? []).find((l) => l.path === current);
      const channels = layer?.shape?.[layer.shape.length - 1];
      channelInput.max = channels ? channels - 1 : "";
      channelCount.textContent = channels ? `of ${channels}` : "";
    }

    // ---- the image strip ----
    function drawStrip() {
      const meta = model.get("thumbs_meta") ?? {};
      const bytes = bytesOf(model.get("thumbs"));
      const predictions = model.get("predictions") ?? [];
      const size = (meta.h ?? 0) * (meta.w ?? 0) * 3;
      const items = [];
      for (let i = 0; i < (meta.n ?? 0); i++) {
        let picture = h("img", { alt: "" }); // an image, not a canvas: see pictureImg
        if (size > 0 && bytes.length >= (i + 1) * size) {
          const image = new ImageData(meta.w, meta.h);
          paintRGB(image, { x: 0, y: 0, w: meta.w, h: meta.h },
            { data: bytes.subarray(i * size, (i + 1) * size), w: meta.w, h: meta.h });
          picture = pictureImg(image);
        }
        const label = predictions[i]?.label;
        items.push(h("button", { class: "cnnw-x-thumb", type: "button", "data-index": String(i),
          title: label === undefined ? `image ${i}` : `image ${i}: predicted ${label}`,
          "aria-label": `image ${i}` }, [picture, h("span", { text: label ?? String(i) })]));
      }
      strip.replaceChildren(...items);
      showImage();
    }

    function showImage() {
      const current = model.get("image");
      const n = model.get("n_images") ?? 0;
      root.dataset.image = String(current);
      imageInput.max = Math.max(0, n - 1);
      imageInput.value = current;
      imageInput.disabled = n <= 1;
      imageCount.textContent = `of ${n}`;
      for (const item of strip.children) item.setAttribute("aria-pressed", String(Number(item.dataset.index) === current));
    }

    function showChannel() {
      root.dataset.channel = String(model.get("channel"));
      channelInput.value = model.get("channel");
    }

    function fillTargets() {
      const names = model.get("class_names") ?? [];
      const predictions = model.get("predictions") ?? [];
      const predicted = predictions[model.get("image")]?.label;
      setOptions(targetSelect, [
        ["-1", predicted === undefined ? "predicted class" : `predicted (${predicted})`],
        ...names.map((name, i) => [String(i), String(name) === String(i) ? `class ${i}` : `${i}: ${name}`]),
      ]);
      showTarget();
    }

    function showTarget() {
      root.dataset.target = String(model.get("target"));
      targetSelect.value = String(model.get("target"));
    }

    function showNotes() {
      const list = model.get("notes") ?? [];
      notes.replaceChildren(...list.map((text) => h("li", { text })));
      notes.hidden = list.length === 0;
    }

    // ---- the panels ----
    const sections = new Map(); // name -> { section, toggle, body, unmount }
    function buildPanels() {
      for (const { unmount } of sections.values()) unmount();
      sections.clear();
      panels.replaceChildren(...(model.get("available") ?? []).map(({ name, label }) => {
        const toggle = h("button", { class: "cnnw-x-toggle", type: "button", text: label, "data-panel": name });
        const body = h("div", { class: "cnnw-x-body" });
        const section = h("section", { class: "cnnw-x-panel", "data-panel": name, "aria-label": label },
          [toggle, body]);
        toggle.addEventListener("click", () => {
          const open = model.get("open_panels") ?? [];
          save("open_panels", open.includes(name) ? open.filter((n) => n !== name) : [...open, name]);
        });
        // The panel's own view is created once the body is shown (mountWidget waits for a width).
        sections.set(name, { section, toggle, body, unmount: mountWidget(model, `${name}_panel`, body) });
        return section;
      }));
      showOpen();
    }

    function showOpen() {
      const open = model.get("open_panels") ?? [];
      root.dataset.open = open.join(",");
      for (const [name, { toggle, body }] of sections) {
        const on = open.includes(name);
        toggle.setAttribute("aria-expanded", String(on));
        body.hidden = !on;
      }
    }

    function showRunning() {
      root.dataset.running = String(Boolean(model.get("running")));
    }

    // ---- a channel clicked in the grid: the selection here at once ----
    // A person's click on a grid channel sets the grid's selected_channel in the page; the Explorer follows it in
    // Python (Explorer._follow_panel), and its channel came back to this view one kernel round trip later. Here the
    // view takes it at once, as a jslink would: it sets its own channel (its box, data-channel) and sends it right
    // after the grid's own message. Python stays the judge: the value is checked there as any value from the page
    // (a refusal puts it back and says why). After the grid's message, not before: the kernel then takes the grid's
    // channel from the page first, and the Explorer's panels find the grid already on it (had the Explorer's come
    // first, the kernel would set the grid's channel itself and send it back, and a reply to a click could reach the
    // page after a newer click and show the older channel for a moment). Only a person's change in this page is
    // followed (not a value the kernel sent: ipywidgets sets those under _state_lock), only while the grid shows
    // the Explorer's layer and image, and only with a kernel to send it to (without one a grid click is put back).
    let unlinkGrid = () => {};
    let gridToken = 0;
    function followGrid(grid) {
      if (grid._state_lock || !kernelLive(model)) return; // the kernel's own value, or no kernel to ask
      const value = grid.get("selected_channel");
      if (!Number.isInteger(value) || value < 0 || value === model.get("channel")) return;
      if (grid.get("layer") !== model.get("layer") || grid.get("image_index") !== model.get("image")) return;
      const layer = (model.get("layers") ?? []).find((l) => l.path === model.get("layer"));
      const channels = layer?.shape?.[layer.shape.length - 1];
      if (!(value < channels)) return;
      model.set("channel", value);
      // The top-examples card too, when it shows this layer: it draws the channel from what the kernel sent it
      // ahead, if it has it (js/channel_card.js shown()), else it waits for the kernel as before.
      const card = examplesModel;
      const toCard = card && !card._state_lock && card.get("layer") === model.get("layer")
        && card.get("channel") !== value && (model.get("open_panels") ?? []).includes("examples");
      if (toCard) card.set("channel", value);
      // The grid's save_changes follows its set in the same task: these go after it, the card's before the
      // Explorer's, so that the kernel has both panels' channel from the page when the Explorer's arrives and sets
      // nothing back (the kernel follows the grid's message itself only a moment later: PAGE_ECHO_SECONDS).
      queueMicrotask(() => {
        if (toCard) card.save_changes();
        model.save_changes();
      });
    }
    /** A channel typed in the card's own box: the Explorer takes it here too, and sends it after the card's. */
    function followCard(card) {
      if (card._state_lock || !kernelLive(model)) return;
      const value = card.get("channel");
      if (!Number.isInteger(value) || value < 0 || value === model.get("channel")) return;
      if (card.get("layer") !== model.get("layer")) return;
      const layer = (model.get("layers") ?? []).find((l) => l.path === model.get("layer"));
      const channels = layer?.shape?.[layer.shape.length - 1];
      if (!(value < channels)) return;
      model.set("channel", value);
      queueMicrotask(() => model.save_changes());
    }
    let examplesModel = null; // the examples panel's model, once resolved
    let examplesToken = 0;
    async function panelModel(trait) {
      const ref = model.get(trait);
      const manager = model.widget_manager;
      if (typeof ref !== "string" || !ref.startsWith("IPY_MODEL_") || typeof manager?.get_model !== "function") {
        return null;
      }
      try {
        const found = await manager.get_model(ref.slice("IPY_MODEL_".length));
        return found && typeof found.on === "function" ? found : null;
      } catch (error) {
        return null; // no such model (closed): nothing to follow
      }
    }
    async function linkGrid() {
      const mine = ++gridToken;
      unlinkGrid();
      unlinkGrid = () => {};
      const grid = await panelModel("activations_panel");
      if (mine !== gridToken || !grid) return;
      const listener = () => followGrid(grid);
      grid.on("change:selected_channel", listener);
      unlinkGrid = () => grid.off("change:selected_channel", listener);
    }
    let unlinkExamples = () => {};
    async function linkExamples() {
      const mine = ++examplesToken;
      examplesModel = null;
      unlinkExamples();
      unlinkExamples = () => {};
      const card = await panelModel("examples_panel");
      if (mine !== examplesToken || !card) return;
      examplesModel = card;
      const listener = () => followCard(card);
      card.on("change:channel", listener);
      unlinkExamples = () => card.off("change:channel", listener);
    }
    model.on("change:activations_panel", linkGrid);
    model.on("change:examples_panel", linkExamples);
    linkGrid();
    linkExamples();

    // ---- input ----
    layerList.addEventListener("click", (event) => {
      const item = event.target.closest(".cnnw-x-layer");
      if (item && item.dataset.layer !== model.get("layer")) save("layer", item.dataset.layer);
    });
    strip.addEventListener("click", (event) => {
      const item = event.target.closest(".cnnw-x-thumb");
      if (item && Number(item.dataset.index) !== model.get("image")) save("image", Number(item.dataset.index));
    });
    commitOnEnter(imageInput, () => {
      const value = Math.round(Number(imageInput.value));
      if (imageInput.value !== "" && Number.isFinite(value) && value !== model.get("image")) save("image", value);
      imageInput.value = model.get("image");
    });
    commitOnEnter(channelInput, () => {
      const value = Math.round(Number(channelInput.value));
      if (channelInput.value !== "" && Number.isFinite(value) && value !== model.get("channel")) save("channel", value);
      channelInput.value = model.get("channel");
    });
    targetSelect.addEventListener("change", () => save("target", Number(targetSelect.value)));

    const { dispose } = react(model, [
      [fillLayers, ["layers"]],
      [showLayer, ["layer"]],
      [drawStrip, ["thumbs", "thumbs_meta", "predictions"]],
      [showImage, ["image", "n_images"]],
      [showChannel, ["channel"]],
      [fillTargets, ["class_names", "predictions", "image"]],
      [showTarget, ["target"]],
      [showNotes, ["notes"]],
      [buildPanels, ["available"]],
      [showOpen, ["open_panels"]],
      [showError, ["error"]],
      [showsText(model, "status", status), ["status"]],
      [showWarning, ["warning"]],
      [showRunning, ["running"]],
    ]);
    return () => {
      dispose();
      gridToken += 1;
      examplesToken += 1;
      examplesModel = null;
      model.off("change:activations_panel", linkGrid);
      model.off("change:examples_panel", linkExamples);
      unlinkGrid();
      unlinkExamples();
      for (const { unmount } of sections.values()) unmount();
    };
  },
};
