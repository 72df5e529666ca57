// Save-PNG for every view. The base (cnnwidget/widgets/_base.py, _export.wrap_esm) wraps each widget's bundled
// module: `export default view` becomes `export default __cnnwExportTools(view)`, so every view, including ones
// added later, answers the kernel's save_png request and gets a small "PNG" button in its toolbar. Names here are
// prefixed (cnnw...) because this file is appended to modules that declare their own helpers.

/** The view's canvases that are drawn and shown, in page order; not those inside charts (a bqplot figure keeps a
 * WebGL canvas over its SVG plot, blank unless a GL mark draws in it). */
export function cnnwPngCanvases(root) {
  return [...root.querySelectorAll("canvas")].filter((c) => c.width > 0 && c.height > 0 && c.isConnected
    && c.getClientRects().length > 0 && !c.closest(".bqplot"));
}

/**
 * The view's canvases composed into one canvas at their own resolution: one canvas is copied pixel for pixel; several
 * are placed as laid out on the page, scaled by the largest ratio of a canvas's pixels to its CSS size (so each
 * keeps its resolution), with no smoothing. Returns { canvas, count }.
 */
export function cnnwPngCompose(root) {
  const canvases = cnnwPngCanvases(root);
  if (!canvases.length) throw new Error("this view has no drawn canvas to save (its charts are SVG)");
  if (canvases.length === 1) return { canvas: canvases[0], count: 1 };
  const rects = canvases.map((c) => c.getBoundingClientRect());
  const scale = Math.max(1, ...canvases.map((c, i) => c.width / Math.max(1, rects[i].width)));
  const left = Math.min(...rects.map((r) => r.left));
  const top = Math.min(...rects.map((r) => r.top));
  const right = Math.max(...rects.map((r) => r.right));
  const bottom = Math.max(...rects.map((r) => r.bottom));
  const out = document.createElement("canvas");
  out.width = Math.round((right - left) * scale);
  out.height = Math.round((bottom - top) * scale);
  const ctx = out.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  canvases.forEach((c, i) => {
    const r = rects[i];
    ctx.drawImage(c, Math.round((r.left - left) * scale), Math.round((r.top - top) * scale),
      Math.round(r.width * scale), Math.round(r.height * scale));
  });
  return { canvas: out, count: canvases.length };
}

function cnnwPngBlob(canvas) {
  return new Promise((resolve, reject) => canvas.toBlob((b) => (b ? resolve(b) : reject(new Error("no PNG"))),
    "image/png"));
}

/** The button: downloads the PNG in the browser (works with or without a kernel). */
function cnnwPngButton(el) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "cnnw-save-png";
  button.textContent = "PNG";
  button.title = "save the view's images as a PNG";
  button.style.cssText = "font: inherit; font-size: 11px; padding: 0 6px; cursor: pointer;";
  button.addEventListener("click", async () => {
    try {
      const { canvas } = cnnwPngCompose(el);
      const url = URL.createObjectURL(await cnnwPngBlob(canvas));
      const link = document.createElement("a");
      link.href = url;
      link.download = "cnnwidget.png";
      link.click();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
    } catch (error) {
      button.title = String(error.message ?? error);
    }
  });
  return button;
}

/** Put the button at the end of the view's first toolbar row (or above the view when it has none). */
function cnnwPngPlace(el, button) {
  const row = [...el.querySelectorAll("[class*='-row'], [class*='toolbar'], [class*='controls']")]
    .find((node) => !node.closest(".bqplot, .jupyter-widgets"));
  if (row) row.append(button);
  else el.prepend(button);
}

/** `view` (an anywidget module's default export) with the save-PNG request handler and button added. */
export function __cnnwExportTools(view) {
  if (!view || typeof view.render !== "function") return view;
  return {
    ...view,
    async render(props) {
      const { model, el } = props;
      const cleanup = await view.render(props);
      const onMessage = async (message) => {
        if (!message || message.action !== "cnnw_save_png") return;
        try {
          const { canvas, count } = cnnwPngCompose(el);
          const buffer = await (await cnnwPngBlob(canvas)).arrayBuffer();
          model.send({ action: "cnnw_save_png", id: message.id, width: canvas.width, height: canvas.height,
            canvases: count }, undefined, [buffer]);
        } catch (error) {
          model.send({ action: "cnnw_save_png", id: message.id, error: String(error.message ?? error) });
        }
      };
      model.on("msg:custom", onMessage);
      const button = cnnwPngButton(el);
      // Views draw their DOM in render; some fill their toolbar a frame later.
      if (el.querySelector("canvas, [class*='-row']")) cnnwPngPlace(el, button);
      else requestAnimationFrame(() => cnnwPngPlace(el, button));
      return () => {
        model.off("msg:custom", onMessage);
        button.remove();
        if (typeof cleanup === "function") cleanup();
      };
    },
  };
}
