// Small DOM helpers shared by the views. Text from models (layer and class names) only ever goes in through
// textContent, option text and attributes: never through innerHTML.

/** createElement with properties and children; "class", "text" (textContent) and data-/aria-/role attributes. */
export function h(tag, props = {}, children = []) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (/^(data-|aria-|role$)/.test(key)) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children);
  return node;
}

let scratchCanvas = null; // pictureImg's canvas: never in the page

/**
 * An <img> showing `image` (an ImageData) pixel for pixel (a lossless PNG data URL; CSS sizes it): for the small
 * pictures a view shows many of (thumbnails, top-example patches). Chromium composites every <canvas> as a layer of
 * its own and assigns layers again on every frame that paints: the Explorer benchmark's page (two Explorers, 106
 * canvases, 111 layers) spent 30-47 ms of each frame on it (Layerize) and 14 ms with half the layers. An <img> is
 * painted into its parent's layer, and a data URL loads at once (nothing is fetched). `props` as for h().
 */
export function pictureImg(image, props = {}) {
  scratchCanvas ??= document.createElement("canvas");
  scratchCanvas.width = image.width;
  scratchCanvas.height = image.height;
  scratchCanvas.getContext("2d").putImageData(image, 0, 0);
  const img = h("img", { alt: "", decoding: "sync", ...props });
  img.width = image.width;
  img.height = image.height;
  img.src = scratchCanvas.toDataURL("image/png");
  return img;
}

/**
 * Whether the view's model has a kernel to send to: JupyterLab's, Notebook 7's and Voila's widget managers hold
 * the kernel, and say when it has gone; a page with no kernel (an exported HTML file) has none. A view asks before
 * a message that only asks the kernel for something (never to hold back a person's change: that goes, and the
 * kernel guard says when it cannot, js/export_tools.js cnnwKernelGuard).
 */
export function kernelLive(model) {
  const manager = model?.widget_manager;
  if (!manager || typeof manager !== "object" || !("kernel" in manager)) return false;
  try {
    const k = manager.kernel;
    return Boolean(k) && !k.isDisposed && k.status !== "dead";
  } catch (error) {
    return false;
  }
}

/** Replace the options of a select with [value, text] pairs. */
export function setOptions(select, pairs) {
  select.replaceChildren(...pairs.map(([value, text]) => h("option", { value, text })));
}

/** A draw that shows a text trait in `node` (as text), hiding the node while the text is empty if `hideEmpty`. */
export function showsText(model, trait, node, hideEmpty = false) {
  return () => {
    const text = model.get(trait) ?? "";
    node.textContent = text;
    if (hideEmpty) node.hidden = text === "";
  };
}

/**
 * The box that shows the base's `warning` trait (a caveat about the input, e.g. images far outside input_range),
 * hidden while it is empty: returns [node, draw]; put the node in the view and react with draw to ["warning"].
 */
export function warningBox(model) {
  const node = h("div", { class: "cnnw-warning", role: "status", hidden: true });
  return [node, showsText(model, "warning", node, true)];
}

/**
 * The box that shows the base's `error` trait (what went wrong, in words), hidden while it is empty: returns
 * [node, draw]; put the node in the view and react with draw to ["error"]. Styled by baseStyle (.cnnw-error).
 */
export function errorBox(model) {
  const node = h("div", { class: "cnnw-error", role: "alert", hidden: true });
  return [node, showsText(model, "error", node, true)];
}

/**
 * Fraction done (0..1) of the base's `progress` trait {done, total, step, steps}: `done` of `total` units (images,
 * chunks, layers) finished, and `step` of `steps` inside the current one. 0 while there is no total.
 */
export function jobFraction(progress) {
  const { done = 0, total = 0, step = 0, steps = 0 } = progress ?? {};
  if (!(total > 0)) return 0;
  return Math.min(1, Math.max(0, (done + (steps > 0 ? step / steps : 0)) / total));
}

/** The traits a progress bar's draw reacts to: `[drawProgress, PROGRESS_TRAITS]` in a view's reactions. */
export const PROGRESS_TRAITS = ["progress", "running"];

/**
 * The progress bar of a job: returns [node, draw]; react with draw to PROGRESS_TRAITS. `fraction` turns the trait's
 * value into 0..1 (default jobFraction). While no job runs the bar is empty and hidden (its place kept, so the row
 * does not re-flow): the `progress` trait keeps the last job's value, and a finished job's full bar read as work in
 * progress. Styled by baseStyle (.cnnw-progress); role and aria values for readers.
 */
export function progressBar(model, fraction = jobFraction) {
  const bar = h("div", { class: "cnnw-progress-bar" });
  const node = h("div", { class: "cnnw-progress", role: "progressbar", "aria-valuemin": "0",
    "aria-valuemax": "100", "aria-valuenow": "0" }, [bar]);
  return [node, () => {
    const running = Boolean(model.get("running"));
    const f = running ? fraction(model.get("progress")) : 0;
    bar.style.width = `${(100 * f).toFixed(1)}%`;
    node.style.visibility = running ? "visible" : "hidden";
    node.dataset.idle = String(!running);
    node.setAttribute("aria-valuenow", String(Math.round(100 * f)));
  }];
}

/**
 * Redraw on trait changes, at most once per animation frame for each draw: one message often changes several
 * traits (a page is bytes + ranges + meta). `reactions` is [[draw, [trait, ...]], ...]; every draw also runs once
 * now. Returns { schedule(draw) } for other triggers (a resize) and dispose(), which removes the listeners.
 */
export function react(model, reactions) {
  const pending = new Set();
  let frame = 0;
  function schedule(draw) {
    pending.add(draw);
    frame ||= requestAnimationFrame(() => {
      frame = 0;
      const draws = [...pending];
      pending.clear();
      draws.forEach((d) => d());
    });
  }
  const listeners = reactions.flatMap(([draw, traits]) =>
    traits.map((trait) => [`change:${trait}`, () => schedule(draw)]));
  listeners.forEach(([event, listener]) => model.on(event, listener));
  reactions.forEach(([draw]) => draw());
  return {
    schedule,
    dispose() {
      listeners.forEach(([event, listener]) => model.off(event, listener));
      cancelAnimationFrame(frame);
    },
  };
}

/**
 * The CSS every view starts from, scoped to its root class: JupyterLab's UI font and colour, [hidden] honoured,
 * labels as inline rows no wider than the view, and the form `controls` in the theme's colours. A view appends
 * its own layout rules.
 */
export function baseStyle(root, controls = ["select", "input", "button"]) {
  const r = `.${root}`;
  return `
${r} { font-family: var(--jp-ui-font-family, system-ui, sans-serif); font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color1, #212121); }
${r} [hidden] { display: none !important; }
${r} .cnnw-warning { padding: 4px 8px; border-left: 3px solid var(--jp-warn-color1, #f57c00);
  color: var(--jp-ui-font-color1, #212121); background: var(--jp-layout-color2, #eeeeee); white-space: pre-wrap; }
${r} .cnnw-error { padding: 4px 8px; border-left: 3px solid var(--jp-error-color1, #d32f2f);
  color: var(--jp-error-color1, #d32f2f); background: var(--jp-layout-color2, #eeeeee); white-space: pre-wrap; }
${r} .cnnw-progress { position: relative; width: 160px; height: 8px; border-radius: 4px; overflow: hidden;
  background: var(--jp-layout-color3, #bdbdbd); flex: none; }
${r} .cnnw-progress-bar { height: 100%; width: 0; background: var(--jp-brand-color1, #1976d2); }
${r} label { display: inline-flex; align-items: center; gap: 4px; max-width: 100%; }
${controls.map((c) => `${r} ${c}`).join(", ")} { font: inherit; color: inherit;
  background: var(--jp-layout-color1, #fff); border: 1px solid var(--jp-border-color1, #bdbdbd); border-radius: 2px; }`;
}

/**
 * Show the widget referenced by the trait `trait` (a child widget, "IPY_MODEL_<id>", e.g. a bqplot figure) inside
 * `container`, as ipywidgets' own boxes do: its view is created by the widget manager and told it is attached
 * (Lumino messages) and displayed, and told to re-lay itself out when `container` resizes. The view is created,
 * and re-laid out, only while `container` is in the page with a width: a bqplot figure measures its box as it
 * renders, and one laid out in a detached or hidden box (a sidebar panel behind another) gets a negative plot
 * area. The width is asked again once the view is made (making it takes a few awaits, during which the box may be
 * hidden: an AttributionMap's charts in the Explorer, hidden by the view's first draw while their figures were on
 * their way, logged 12 "<rect> attribute width: A negative value is not valid" on every page load); a view made for
 * a hidden box waits, made but not attached, until the box has a width. Follows changes of the trait. Returns a
 * cleanup function that removes the view.
 */
export function mountWidget(model, trait, container) {
  let view = null;
  let shown = false;
  let token = 0; // the current trait value's turn: a view created for an older value is dropped
  let creating = false;
  let gone = false; // the view was removed by its model's close (from Python): nothing to show until the trait changes
  const tell = (type) => {
    const widget = view?.luminoWidget ?? view?.pWidget;
    // a disposed Lumino widget has dropped its view: a message to it throws (ipywidgets' processMessage)
    if (!widget || widget.isDisposed) return;
    widget.processMessage?.({ type, isConflatable: type === "resize", width: -1, height: -1 });
  };
  const visible = () => container.isConnected && container.clientWidth > 0;
  async function create() {
    const mine = token;
    const ref = model.get(trait);
    const manager = model.widget_manager;
    if (typeof ref !== "string" || !ref.startsWith("IPY_MODEL_") || !manager) return;
    creating = true;
    try {
      const child = await manager.get_model(ref.slice("IPY_MODEL_".length));
      const created = await manager.create_view(child, {});
      if (mine !== token) {
        created.remove();
        return;
      }
      view = created;
      // A model closed from Python removes its views itself: forget this one, and tell it nothing more (the box
      // resizing as it empties would send a resize to its disposed Lumino widget: "Cannot read properties of null
      // (reading 'processLuminoMessage')", once per chart and panel of a closed Explorer).
      created.once?.("remove", () => {
        if (view !== created) return;
        view = null;
        shown = false;
        gone = true;
        container.cnnwMountedView = null;
      });
      if (visible()) attach(); // else the ResizeObserver attaches it once the box has a width
    } finally {
      creating = false;
    }
  }
  function attach() {
    // the view, for the PNG export (js/export_tools.js): a bqplot figure off screen keeps a stale layout until it
    // is laid out again, and the export reaches the figures' views through here
    container.cnnwMountedView = view;
    container.dataset.cnnwMount = "";
    tell("before-attach");
    container.replaceChildren(view.el);
    tell("after-attach");
    view.trigger("displayed");
    shown = true;
  }
  function show() {
    token += 1;
    view?.remove();
    view = null;
    container.cnnwMountedView = null;
    shown = false;
    gone = false;
    if (visible()) create();
  }
  const resize = new ResizeObserver(() => {
    if (gone || !visible()) return; // hidden: the view keeps its last layout
    if (shown) tell("resize");
    else if (view) attach(); // made while the box was hidden
    else if (!creating) create();
  });
  const listener = () => show();
  model.on(`change:${trait}`, listener);
  resize.observe(container);
  show();
  return () => {
    token += 1;
    model.off(`change:${trait}`, listener);
    resize.disconnect();
    view?.remove();
    view = null;
    container.cnnwMountedView = null;
  };
}

/**
 * Call `commit()` when the person presses Enter in `input` as well as on its change event: JupyterLab takes the
 * Enter key for the notebook, so a typed number was applied only on blur. Enter stays inside the widget.
 */
export function commitOnEnter(input, commit) {
  input.addEventListener("change", commit);
  input.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    event.preventDefault();
    event.stopPropagation();
    commit();
  });
}
