// Save-PNG for every view. The base (cnnwidget/widgets/_base.py, _export.wrap_esm) wraps each widget's bundled
// module: `export default view` becomes `export default __cnnwExportTools(view)`, so every view, including ones
// added later, answers the kernel's save_png request and gets a small "PNG" button in its toolbar. Names here are
// prefixed (cnnwPng...) because this file is appended to modules that declare their own helpers; it has no imports.
//
// The PNG holds what the view shows, cropped to it: canvases at their place on the page (at their own resolution:
// a canvas whose pixels match the PNG's scale is copied pixel for pixel), element backgrounds and borders (colour
// bars' gradients, class-support bars, swatches, panel headers), text (every text node drawn with fillText in its
// computed font and colour, word by word at the word's boxes on the page; never parsed as HTML) and SVG charts
// (bqplot figures: a clone with the computed styles inlined, drawn as an image). Controls are drawn as the settings
// they hold, without their chrome (a select or a number input as its text, a checkbox as a box); action buttons
// (Compute, Cancel, prev / next), sliders, progress bars and the PNG button are left out.
// Clipping by scrolled or overflow-hidden boxes is kept, so the PNG shows what the page shows.

/** What is left out of the PNG (with everything inside it). Selects, number and text inputs and checkboxes are drawn
 * as their value (text, a ticked box): the settings that made the picture, without the control's chrome. */
const CNNW_PNG_SKIP = ["textarea", "option", "progress", "script", "style", "template",
  ".cnnw-save-png", ".cnnw-progress", ".cnnw-hover", ".cnnw-no-kernel",
  ".jupyter-button", ".widget-slider", ".widget-hslider", ".widget-vslider", ".widget-button",
  ".widget-toggle-button", ".widget-toggle-buttons", ".widget-textarea", ".widget-play", ".widget-colorpicker",
  ".widget-datepicker", ".bqplot-tooltip", ".jp-OutputArea-prompt"].join(", ");
/** An action button (Compute, Cancel, prev, next) is left out too, unless it holds a picture (a thumbnail to click)
 * or shows state (aria-pressed: a chosen layer or image; aria-expanded: a panel's title). */
const CNNW_PNG_ACTION = "button:not([aria-pressed]):not([aria-expanded])";
/** SVG properties inlined from the computed style (no url() ones: a clone drawn as an image resolves only its own
 * ids, which stay as attributes). */
const CNNW_PNG_SVG_PROPS = ["fill", "fill-opacity", "fill-rule", "stroke", "stroke-width", "stroke-opacity",
  "stroke-dasharray", "stroke-dashoffset", "stroke-linecap", "stroke-linejoin", "stroke-miterlimit", "opacity",
  "visibility", "display", "font-family", "font-size", "font-weight", "font-style", "text-anchor",
  "dominant-baseline", "alignment-baseline", "baseline-shift", "letter-spacing", "text-decoration-line",
  "shape-rendering", "paint-order", "color", "stop-color", "stop-opacity", "vector-effect", "white-space"];
const CNNW_PNG_PAD = 4; // CSS px of background around what is drawn
const CNNW_PNG_MAX_SCALE = 4;
const CNNW_PNG_MAX_PIXELS = 64e6; // a bigger PNG is scaled down (and says so in the answer)
const CNNW_PNG_HIDDEN_WAIT = 20000; // ms a view that is not shown waits before answering a save_png request (a
// shown view of a TrainingMonitor took over 2 s to compose on a loaded machine; the kernel keeps the first answer)

// ---- pure helpers (node tests: js/export_tools.test.mjs) --------------------------------------------------------

/** The r, g, b, a (0-255, alpha 0-1) of a computed CSS colour ("rgb(1, 2, 3)", "rgba(1, 2, 3, 0.5)"), or null. */
export function cnnwPngRgba(css) {
  const m = /^rgba?\(\s*([\d.]+)[,\s]+([\d.]+)[,\s]+([\d.]+)(?:\s*[,/]\s*([\d.]+%?))?\s*\)$/.exec(String(css).trim());
  if (!m) return null;
  let a = m[4] === undefined ? 1 : parseFloat(m[4]);
  if (m[4] && m[4].endsWith("%")) a /= 100;
  return [Number(m[1]), Number(m[2]), Number(m[3]), a];
}

/** `text` split at commas that are not inside parentheses. */
export function cnnwPngSplitTop(text) {
  const parts = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "(") depth += 1;
    else if (c === ")") depth -= 1;
    else if (c === "," && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts.filter((p) => p !== "");
}

/**
 * A computed `background-image` that is one CSS linear-gradient, as { angle, stops: [{ color, at }] } (angle in
 * degrees, CSS convention: 90 = to right; `at` 0..1 along the gradient line, filled in evenly where not given), or
 * null for anything else (url(), radial or conic gradients, several layers).
 */
export function cnnwPngGradient(css) {
  const m = /^linear-gradient\((.*)\)$/s.exec(String(css).trim());
  if (!m) return null;
  const parts = cnnwPngSplitTop(m[1]);
  let angle = 180;
  const sides = { top: 0, right: 90, bottom: 180, left: 270 };
  const first = parts[0];
  if (/^to\s/.test(first)) {
    const words = first.split(/\s+/).slice(1);
    if (words.length !== 1 || !(words[0] in sides)) return null; // corners: not drawn by us
    angle = sides[words[0]];
    parts.shift();
  } else if (/^-?[\d.]+(deg|turn|rad|grad)$/.test(first)) {
    const v = parseFloat(first);
    const unit = first.replace(/^-?[\d.]+/, "");
    angle = unit === "deg" ? v : unit === "turn" ? v * 360 : unit === "rad" ? (v * 180) / Math.PI : v * 0.9;
    parts.shift();
  }
  const stops = [];
  for (const part of parts) {
    const s = /^(rgba?\([^)]*\)|#[0-9a-fA-F]{3,8}|[a-z]+)(?:\s+(-?[\d.]+)%)?(?:\s+(-?[\d.]+)%)?$/.exec(part);
    if (!s) return null;
    stops.push({ color: s[1], at: s[2] === undefined ? null : parseFloat(s[2]) / 100 });
    if (s[3] !== undefined) stops.push({ color: s[1], at: parseFloat(s[3]) / 100 });
  }
  if (stops.length < 2) return null;
  if (stops[0].at === null) stops[0].at = 0;
  if (stops[stops.length - 1].at === null) stops[stops.length - 1].at = 1;
  for (let i = 1; i < stops.length; i++) { // missing positions: evenly between the known ones; never backwards
    if (stops[i].at === null) {
      let j = i;
      while (stops[j].at === null) j += 1;
      const a = stops[i - 1].at;
      const step = (stops[j].at - a) / (j - i + 1);
      for (let k = i; k < j; k++) stops[k].at = a + step * (k - i + 1);
    }
    stops[i].at = Math.max(stops[i].at, stops[i - 1].at);
  }
  return { angle, stops: stops.map((x) => ({ color: x.color, at: Math.min(1, Math.max(0, x.at)) })) };
}

/** The two ends of a CSS gradient line of `angle` degrees over a w x h box (CSS Images 3, linear-gradient). */
export function cnnwPngGradientLine(angle, w, h) {
  const rad = (angle * Math.PI) / 180;
  const dx = Math.sin(rad);
  const dy = -Math.cos(rad);
  const half = (Math.abs(w * dx) + Math.abs(h * dy)) / 2;
  return [w / 2 - dx * half, h / 2 - dy * half, w / 2 + dx * half, h / 2 + dy * half];
}

/**
 * Words from one text node's characters and their boxes on the page: `chars` is [{ ch, rect }] in text order
 * (rect { left, top, width, height } or null for a character with no box: collapsed white space, a hidden one).
 * White space splits words; so does a new line (a box lower than the last, or left of it). Returns
 * [{ text, left, top, right, bottom }], each drawn at its own place, so collapsed or justified spaces need no
 * rule here.
 */
export function cnnwPngWords(chars) {
  const words = [];
  let word = null;
  for (const { ch, rect } of chars) {
    if (/\s/.test(ch) || !rect || (rect.width <= 0 && rect.height <= 0)) {
      word = null;
      continue;
    }
    const right = rect.left + rect.width;
    const bottom = rect.top + rect.height;
    const sameLine = word && Math.abs(rect.top - word.top) < Math.max(1, rect.height / 2)
      && rect.left >= word.right - 1;
    if (!sameLine) {
      word = { text: "", left: rect.left, top: rect.top, right, bottom };
      words.push(word);
    }
    word.text += ch;
    word.right = Math.max(word.right, right);
    word.bottom = Math.max(word.bottom, bottom);
    word.top = Math.min(word.top, rect.top);
  }
  return words;
}

/** The intersection of two rects {left, top, right, bottom} (null = no limit); null-sized when they miss. */
export function cnnwPngIntersect(a, b) {
  if (!a) return b;
  if (!b) return a;
  return { left: Math.max(a.left, b.left), top: Math.max(a.top, b.top), right: Math.min(a.right, b.right),
    bottom: Math.min(a.bottom, b.bottom) };
}

/** The box holding every rect (each {left, top, right, bottom}), `pad` wider on each side; null for none. */
export function cnnwPngBounds(rects, pad = 0) {
  const real = rects.filter((r) => r && r.right > r.left && r.bottom > r.top);
  if (!real.length) return null;
  return { left: Math.min(...real.map((r) => r.left)) - pad, top: Math.min(...real.map((r) => r.top)) - pad,
    right: Math.max(...real.map((r) => r.right)) + pad, bottom: Math.max(...real.map((r) => r.bottom)) + pad };
}

/**
 * The PNG's pixels per CSS pixel: the resolution of the view's biggest canvas (its pixels over its width on the
 * page), so that canvas is copied pixel for pixel; at least 1 (a canvas shown enlarged is drawn enlarged), a near
 * whole number rounded, at most `max`. `canvases`: [{ width, cssWidth }] (pixels, CSS px).
 */
export function cnnwPngScale(canvases, max = CNNW_PNG_MAX_SCALE) {
  let best = null;
  for (const c of canvases) {
    if (!(c.cssWidth > 0) || !(c.width > 0)) continue;
    if (!best || c.width * (c.height ?? 1) > best.width * (best.height ?? 1)) best = c;
  }
  if (!best) return 1;
  const ratio = best.width / best.cssWidth;
  const near = Math.round(ratio);
  const s = Math.abs(ratio - near) < 0.02 ? near : ratio;
  return Math.min(max, Math.max(1, s));
}

/** `text` as CSS text-transform shows it (uppercase, lowercase, capitalize; others as given). */
export function cnnwPngTransform(text, transform) {
  if (transform === "uppercase") return text.toUpperCase();
  if (transform === "lowercase") return text.toLowerCase();
  if (transform === "capitalize") return text.replace(/(^|\s)(\S)/g, (_, a, b) => a + b.toUpperCase());
  return text;
}

/** A list item's marker text for a list-style-type (decimal, disc, circle, square; none and others: ""). */
export function cnnwPngMarker(type, index) {
  if (type === "decimal") return `${index}.`;
  if (type === "decimal-leading-zero") return `${String(index).padStart(2, "0")}.`;
  return { disc: "•", circle: "◦", square: "▪" }[type] ?? "";
}

// ---- the scene: what the view shows, read from the page ---------------------------------------------------------

function cnnwPngBox(r) {
  return { left: r.left, top: r.top, right: r.right, bottom: r.bottom };
}

/** The content box of an element (inside borders and padding), from its style and border box. */
function cnnwPngContent(el, style, r) {
  const n = (v) => parseFloat(v) || 0;
  return { left: r.left + n(style.borderLeftWidth) + n(style.paddingLeft),
    top: r.top + n(style.borderTopWidth) + n(style.paddingTop),
    right: r.right - n(style.borderRightWidth) - n(style.paddingRight),
    bottom: r.bottom - n(style.borderBottomWidth) - n(style.paddingBottom) };
}

function cnnwPngFont(style) {
  const caps = style.fontVariantCaps === "small-caps" ? "small-caps " : "";
  return `${style.fontStyle} ${caps}${style.fontWeight} ${style.fontSize} ${style.fontFamily}`;
}

/**
 * Walk the view under `root` in tree order and list what to draw: fills, gradients and borders (in paint order),
 * images (canvas, img, svg) and words, each with its clip (the boxes of scrolled / overflow-hidden ancestors) and
 * opacity. Reads layout only; changes nothing.
 */
function cnnwPngScene(root) {
  const scene = { boxes: [], images: [], words: [], markers: [] };
  const range = document.createRange();
  const visit = (el, clip, alpha) => {
    if (el !== root && (el.matches(CNNW_PNG_SKIP)
      || (el.matches(CNNW_PNG_ACTION) && !el.querySelector("canvas, img, svg")))) return;
    const style = getComputedStyle(el);
    if (style.display === "none") return;
    const opacity = alpha * (parseFloat(style.opacity) || (style.opacity === "0" ? 0 : 1));
    if (opacity <= 0) return;
    const r = el.getBoundingClientRect();
    const visible = style.visibility === "visible";
    const isSvg = el instanceof SVGSVGElement;
    const tag = el.tagName;
    if (tag === "SELECT" || tag === "INPUT") { // its value, not its box
      if (visible && r.width > 0 && r.height > 0) cnnwPngControl(scene, el, style, r, clip, opacity);
      return;
    }
    if (el !== root && visible && r.width > 0 && r.height > 0) {
      const box = cnnwPngBox(r);
      const bg = cnnwPngRgba(style.backgroundColor);
      if (bg && bg[3] > 0) scene.boxes.push({ kind: "fill", box, color: style.backgroundColor, clip, alpha: opacity });
      if (style.backgroundImage && style.backgroundImage !== "none") {
        const gradient = cnnwPngGradient(style.backgroundImage);
        if (gradient) {
          const inner = { left: box.left + (parseFloat(style.borderLeftWidth) || 0),
            top: box.top + (parseFloat(style.borderTopWidth) || 0),
            right: box.right - (parseFloat(style.borderRightWidth) || 0),
            bottom: box.bottom - (parseFloat(style.borderBottomWidth) || 0) };
          scene.boxes.push({ kind: "gradient", box: inner, gradient, clip, alpha: opacity });
        }
      }
      const sides = ["Top", "Right", "Bottom", "Left"].map((side) => ({
        side, width: parseFloat(style[`border${side}Width`]) || 0, style: style[`border${side}Style`],
        color: style[`border${side}Color`] }))
        .filter((b) => b.width > 0 && b.style !== "none" && b.style !== "hidden"
          && (cnnwPngRgba(b.color)?.[3] ?? 0) > 0);
      if (sides.length && !isSvg) scene.boxes.push({ kind: "border", box, sides, clip, alpha: opacity });
      if (style.display === "list-item" && style.listStylePosition === "outside") {
        const list = el.parentElement;
        const items = list ? [...list.children].filter((c) => c.tagName === "LI") : [el];
        const start = list && list.tagName === "OL" && list.hasAttribute("start") ? Number(list.start) : 1;
        const text = cnnwPngMarker(style.listStyleType, start + items.indexOf(el));
        if (text) {
          const content = cnnwPngContent(el, style, r);
          scene.markers.push({ text, right: content.left - 0.25 * (parseFloat(style.fontSize) || 13), top: content.top,
            lineHeight: style.lineHeight, fontSize: parseFloat(style.fontSize) || 13, font: cnnwPngFont(style),
            color: style.color, clip, alpha: opacity });
        }
      }
    }
    if ((tag === "CANVAS" || tag === "IMG" || isSvg) && el !== root) {
      const drawn = tag === "CANVAS" ? el.width > 0 && el.height > 0 && !el.closest(".bqplot")
        : tag === "IMG" ? el.complete && el.naturalWidth > 0 : true;
      if (drawn && visible && r.width > 0 && r.height > 0) {
        scene.images.push({ kind: tag === "CANVAS" ? "canvas" : tag === "IMG" ? "img" : "svg", el,
          box: isSvg ? cnnwPngBox(r) : cnnwPngContent(el, style, r), clip, alpha: opacity });
      }
      return; // a chart's text is in its SVG
    }
    if (el instanceof SVGElement) return; // an SVG inside HTML that is not the outermost: drawn with it
    let inner = clip;
    if (el !== root && (style.overflowX !== "visible" || style.overflowY !== "visible")) {
      inner = cnnwPngIntersect(clip, { left: r.left + el.clientLeft, top: r.top + el.clientTop,
        right: r.left + el.clientLeft + el.clientWidth, bottom: r.top + el.clientTop + el.clientHeight });
    }
    for (const child of el.childNodes) {
      if (child.nodeType === 1) visit(child, inner, opacity);
      else if (child.nodeType === 3 && visible && child.data.trim()) {
        const words = cnnwPngNodeWords(child, range);
        if (words.length) {
          scene.words.push({ words, font: cnnwPngFont(style), color: style.color, transform: style.textTransform,
            letterSpacing: style.letterSpacing, ellipsis: style.textOverflow === "ellipsis", clip: inner,
            alpha: opacity });
        }
      }
    }
  };
  visit(root, null, 1);
  range.detach?.();
  return scene;
}

/** A select, number or text input as the text it shows (clipped to its box), a checkbox as a box, ticked or not;
 * sliders, buttons and the rest as nothing (a slider's value is shown beside it as text where it matters). */
function cnnwPngControl(scene, el, style, r, clip, alpha) {
  const type = el.tagName === "SELECT" ? "select" : (el.type || "text").toLowerCase();
  const content = cnnwPngContent(el, style, r);
  const box = cnnwPngIntersect(clip, cnnwPngBox(r));
  if (type === "checkbox" || type === "radio") {
    scene.boxes.push({ kind: "check", box: cnnwPngBox(r), checked: el.checked, round: type === "radio",
      color: style.color, clip, alpha });
    return;
  }
  let text = "";
  if (type === "select") text = el.selectedOptions?.[0]?.text ?? "";
  else if (["text", "number", "search", "email", "url", "tel"].includes(type)) text = el.value;
  text = text.replace(/\s+/g, " ").trim();
  if (!text) return;
  scene.words.push({ words: [{ text, left: content.left, top: content.top, right: content.right,
    bottom: content.bottom }], font: cnnwPngFont(style), color: style.color, transform: "none",
  letterSpacing: style.letterSpacing, ellipsis: false, clip: box, alpha });
}

/** One text node's words at their boxes on the page (cnnwPngWords over each character's range). */
function cnnwPngNodeWords(node, range) {
  const data = node.data;
  if (data.length > 20000) { // one box per line, whole (not seen in views; a guard against a huge text)
    range.selectNodeContents(node);
    return [...range.getClientRects()].slice(0, 1).map((r) => ({ text: data.trim(), left: r.left, top: r.top,
      right: r.right, bottom: r.bottom }));
  }
  const chars = [];
  for (let i = 0; i < data.length;) {
    const code = data.codePointAt(i);
    const n = code > 0xffff ? 2 : 1;
    const ch = data.slice(i, i + n);
    let rect = null;
    if (!/\s/.test(ch)) {
      range.setStart(node, i);
      range.setEnd(node, i + n);
      const rects = range.getClientRects();
      rect = rects.length ? rects[0] : null;
    }
    chars.push({ ch, rect });
    i += n;
  }
  return cnnwPngWords(chars);
}

/** The background the view sits on: its own or its nearest ancestor's opaque background colour, else white. */
function cnnwPngBackground(root) {
  for (let el = root; el; el = el.parentElement) {
    const c = cnnwPngRgba(getComputedStyle(el).backgroundColor);
    if (c && c[3] > 0) return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
  }
  return "rgb(255, 255, 255)";
}

/** An SVG chart as a standalone SVG document: a clone with each element's computed style inlined. */
function cnnwPngSvgXml(svg, box) {
  const clone = svg.cloneNode(true);
  const from = [svg, ...svg.querySelectorAll("*")];
  const to = [clone, ...clone.querySelectorAll("*")];
  from.forEach((node, i) => {
    const style = getComputedStyle(node);
    const inline = CNNW_PNG_SVG_PROPS.map((p) => `${p}: ${style.getPropertyValue(p)}`).join("; ");
    const own = to[i].getAttribute("style");
    to[i].setAttribute("style", own ? `${own}; ${inline}` : inline);
  });
  clone.querySelectorAll("foreignObject, script").forEach((node) => node.remove());
  // (XMLSerializer writes the SVG namespace on the root itself: the clone's elements are in it)
  clone.setAttribute("width", String(box.right - box.left));
  clone.setAttribute("height", String(box.bottom - box.top));
  return new XMLSerializer().serializeToString(clone);
}

function cnnwPngLoad(xml) {
  const url = URL.createObjectURL(new Blob([xml], { type: "image/svg+xml" }));
  const img = new Image();
  img.src = url;
  return img.decode().then(() => img, () => null).finally(() => URL.revokeObjectURL(url));
}

/**
 * The view under `root` composed into one canvas: a Promise of { canvas, count, parts, scale, left, top }, where
 * count is the number of canvases drawn, parts counts each kind (canvases, images, charts, words, boxes), and
 * (left, top) is the page position (CSS px) of the PNG's top-left pixel. Throws if the view shows nothing.
 */
export async function cnnwPngCompose(root) {
  await cnnwPngLayCharts(root);
  return cnnwPngComposeScene(root);
}

/** The bqplot figure views under `root`: reached from the child views js/dom.js mountWidget made (a figure, or an
 * ipywidgets box of them), through the boxes' children. */
async function cnnwPngFigureViews(root) {
  const found = [];
  const walk = async (view, depth) => {
    if (!view || depth > 8) return;
    if (typeof view.relayoutImpl === "function" && "visible" in view) found.push(view);
    for (const child of view.children_views?.views ?? []) await walk(await child, depth + 1);
  };
  for (const el of root.querySelectorAll("[data-cnnw-mount]")) await walk(el.cnnwMountedView, 0);
  return found;
}

/** Lay out again the charts that bqplot left as they were while they were off screen (it relays a figure out only
 * while an IntersectionObserver sees it: new margins, ranges or data sizes given meanwhile are applied when it is
 * scrolled to), so the PNG shows them as the page would. A figure seen on screen is left alone. */
async function cnnwPngLayCharts(root) {
  let views = [];
  try {
    views = await cnnwPngFigureViews(root);
  } catch (error) {
    return; // no manager or another bqplot: the charts are drawn as they are
  }
  const stale = views.filter((v) => v.visible === false && v.el?.isConnected && v.el.getBoundingClientRect().width > 0);
  for (const view of stale) {
    try {
      view.visible = true; // for this one layout only: bqplot's observer sets it again when it is scrolled to
      view.should_relayout = true;
      view.relayoutImpl();
    } catch (error) {
      // drawn as it is
    } finally {
      view.visible = false;
    }
  }
  if (stale.length) {
    await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))); // the marks' redraws
  }
}

async function cnnwPngComposeScene(root) {
  const place = root.getBoundingClientRect();
  const scene = cnnwPngScene(root);
  const clipBox = (item, box) => (item.clip ? cnnwPngIntersect(box, item.clip) : box);
  const background = cnnwPngBackground(root);
  const baseRgba = cnnwPngRgba(background);
  const extent = [];
  for (const b of scene.boxes) {
    const c = cnnwPngRgba(b.kind === "fill" ? b.color : "rgb(0,0,0)");
    const same = b.kind === "fill" && c && c[3] >= 1 && c[0] === baseRgba[0] && c[1] === baseRgba[1]
      && c[2] === baseRgba[2];
    if (!same) extent.push(clipBox(b, b.box));
  }
  scene.images.forEach((i) => extent.push(clipBox(i, i.box)));
  scene.words.forEach((w) => w.words.forEach((word) => extent.push(clipBox(w, word))));
  scene.markers.forEach((m) => extent.push(clipBox(m, { left: m.right - 2 * m.fontSize, top: m.top,
    right: m.right, bottom: m.top + 1.2 * m.fontSize })));
  const bounds = cnnwPngBounds(extent, CNNW_PNG_PAD);
  if (!bounds) throw new Error("this view shows nothing to save yet");
  const canvases = scene.images.filter((i) => i.kind === "canvas");
  let scale = cnnwPngScale(canvases.map((i) => ({ width: i.el.width, height: i.el.height,
    cssWidth: i.box.right - i.box.left })));
  const area = (bounds.right - bounds.left) * (bounds.bottom - bounds.top);
  if (area * scale * scale > CNNW_PNG_MAX_PIXELS) scale = Math.sqrt(CNNW_PNG_MAX_PIXELS / area);
  const left = bounds.left;
  const top = bounds.top;
  const X = (x) => (x - left) * scale;
  const Y = (y) => (y - top) * scale;
  const out = document.createElement("canvas");
  out.width = Math.max(1, Math.round((bounds.right - left) * scale));
  out.height = Math.max(1, Math.round((bounds.bottom - top) * scale));
  const ctx = out.getContext("2d");
  ctx.fillStyle = background;
  ctx.fillRect(0, 0, out.width, out.height);
  ctx.imageSmoothingEnabled = false;
  const withClip = (item, draw) => {
    ctx.save();
    ctx.globalAlpha = item.alpha;
    if (item.clip) { // on whole pixels: a clip edge through a pixel would blend a canvas's edge pixels
      const x0 = Math.floor(X(item.clip.left));
      const y0 = Math.floor(Y(item.clip.top));
      ctx.beginPath();
      ctx.rect(x0, y0, Math.max(0, Math.ceil(X(item.clip.right)) - x0),
        Math.max(0, Math.ceil(Y(item.clip.bottom)) - y0));
      ctx.clip();
    }
    draw();
    ctx.restore();
  };
  // the charts' images first (they load asynchronously), then everything in paint order
  const charts = await Promise.all(scene.images.map((i) => (i.kind === "svg" ? cnnwPngLoad(cnnwPngSvgXml(i.el, i.box))
    : null)));
  const parts = { canvases: 0, images: 0, charts: 0, words: 0, boxes: 0 };
  for (const b of scene.boxes) {
    const { box } = b;
    const w = (box.right - box.left) * scale;
    const h = (box.bottom - box.top) * scale;
    if (w <= 0 || h <= 0) continue;
    withClip(b, () => {
      if (b.kind === "fill") {
        ctx.fillStyle = b.color;
        ctx.fillRect(X(box.left), Y(box.top), w, h);
      } else if (b.kind === "check") {
        const size = Math.min(w, h);
        const x = X(box.left) + (w - size) / 2;
        const y = Y(box.top) + (h - size) / 2;
        ctx.strokeStyle = b.color;
        ctx.lineWidth = Math.max(1, scale);
        ctx.beginPath();
        if (b.round) ctx.arc(x + size / 2, y + size / 2, size / 2 - ctx.lineWidth / 2, 0, 2 * Math.PI);
        else ctx.rect(x + ctx.lineWidth / 2, y + ctx.lineWidth / 2, size - ctx.lineWidth, size - ctx.lineWidth);
        ctx.stroke();
        if (b.checked) {
          ctx.lineWidth = Math.max(1.5, 2 * scale);
          ctx.beginPath();
          ctx.moveTo(x + 0.22 * size, y + 0.52 * size);
          ctx.lineTo(x + 0.42 * size, y + 0.72 * size);
          ctx.lineTo(x + 0.78 * size, y + 0.28 * size);
          ctx.stroke();
        }
      } else if (b.kind === "gradient") {
        const [x0, y0, x1, y1] = cnnwPngGradientLine(b.gradient.angle, w, h);
        const g = ctx.createLinearGradient(X(box.left) + x0, Y(box.top) + y0, X(box.left) + x1, Y(box.top) + y1);
        b.gradient.stops.forEach((s) => g.addColorStop(s.at, s.color));
        ctx.fillStyle = g;
        ctx.fillRect(X(box.left), Y(box.top), w, h);
      } else {
        for (const side of b.sides) {
          const bw = side.width * scale;
          const rect = { Top: [X(box.left), Y(box.top), w, bw], Bottom: [X(box.left), Y(box.bottom) - bw, w, bw],
            Left: [X(box.left), Y(box.top), bw, h], Right: [X(box.right) - bw, Y(box.top), bw, h] }[side.side];
          if (side.style === "dashed" || side.style === "dotted") {
            const horizontal = side.side === "Top" || side.side === "Bottom";
            ctx.strokeStyle = side.color;
            ctx.lineWidth = bw;
            ctx.setLineDash(side.style === "dashed" ? [3 * bw, 3 * bw] : [bw, bw]);
            ctx.beginPath();
            if (horizontal) {
              ctx.moveTo(rect[0], rect[1] + bw / 2);
              ctx.lineTo(rect[0] + rect[2], rect[1] + bw / 2);
            } else {
              ctx.moveTo(rect[0] + bw / 2, rect[1]);
              ctx.lineTo(rect[0] + bw / 2, rect[1] + rect[3]);
            }
            ctx.stroke();
            ctx.setLineDash([]);
          } else {
            ctx.fillStyle = side.color;
            ctx.fillRect(...rect);
          }
        }
      }
    });
    parts.boxes += 1;
  }
  scene.images.forEach((item, i) => {
    const { box, el } = item;
    const w = box.right - box.left;
    const h = box.bottom - box.top;
    withClip(item, () => {
      if (item.kind === "canvas") {
        const x = Math.round(X(box.left));
        const y = Math.round(Y(box.top));
        // at the PNG's scale: the canvas's own pixels, one for one; otherwise stretched without smoothing
        if (Math.abs(w * scale - el.width) < 1 && Math.abs(h * scale - el.height) < 1) ctx.drawImage(el, x, y);
        else ctx.drawImage(el, x, y, Math.round(w * scale), Math.round(h * scale));
        parts.canvases += 1;
      } else if (item.kind === "img") {
        // a small picture (a thumbnail, a patch: js/dom.js pictureImg) shown with sharp pixels is drawn so too
        ctx.imageSmoothingEnabled = getComputedStyle(el).imageRendering !== "pixelated";
        ctx.drawImage(el, X(box.left), Y(box.top), w * scale, h * scale);
        parts.images += 1;
      } else if (charts[i]) {
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(charts[i], X(box.left), Y(box.top), w * scale, h * scale);
        parts.charts += 1;
      }
    });
  });
  ctx.imageSmoothingEnabled = true;
  ctx.textBaseline = "alphabetic";
  ctx.textAlign = "left";
  for (const t of scene.words) {
    withClip(t, () => {
      ctx.font = t.font;
      ctx.fillStyle = t.color;
      if ("letterSpacing" in ctx) ctx.letterSpacing = t.letterSpacing === "normal" ? "0px" : t.letterSpacing;
      ctx.scale(scale, scale);
      for (const word of t.words) {
        let text = cnnwPngTransform(word.text, t.transform);
        const m = ctx.measureText(text);
        const ascent = m.fontBoundingBoxAscent ?? m.actualBoundingBoxAscent;
        const descent = m.fontBoundingBoxDescent ?? m.actualBoundingBoxDescent;
        const y = word.top - top + (word.bottom - word.top - ascent - descent) / 2 + ascent;
        if (t.ellipsis && t.clip && word.right > t.clip.right + 0.5) { // cut by its box: end it as the page does
          const room = t.clip.right - word.left;
          while (text.length > 0 && ctx.measureText(`${text}…`).width > room) text = text.slice(0, -1);
          if (word.left >= t.clip.right) continue;
          text = `${text}…`;
        }
        ctx.fillText(text, word.left - left, y);
        parts.words += 1;
      }
    });
  }
  for (const mk of scene.markers) {
    withClip(mk, () => {
      ctx.scale(scale, scale);
      ctx.font = mk.font;
      ctx.fillStyle = mk.color;
      ctx.textAlign = "right";
      const m = ctx.measureText(mk.text);
      const ascent = m.fontBoundingBoxAscent ?? mk.fontSize * 0.8;
      const descent = m.fontBoundingBoxDescent ?? mk.fontSize * 0.2;
      const line = parseFloat(mk.lineHeight) || 1.2 * mk.fontSize;
      ctx.fillText(mk.text, mk.right - left, mk.top - top + (line - ascent - descent) / 2 + ascent);
    });
  }
  // where the PNG's top-left pixel is, relative to the view (CSS px), and its scale: for page tests
  root.dataset.cnnwPng = JSON.stringify({ left: left - place.left, top: top - place.top, scale,
    width: out.width, height: out.height });
  return { canvas: out, count: parts.canvases, parts, scale, left, top };
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
  button.title = "save what the view shows (pictures, colour bars, text, charts) as a PNG";
  button.style.cssText = "font: inherit; font-size: 11px; padding: 0 6px; cursor: pointer;";
  button.addEventListener("click", async () => {
    try {
      const { canvas } = await cnnwPngCompose(el);
      const url = URL.createObjectURL(await cnnwPngBlob(canvas));
      const link = document.createElement("a");
      link.href = url;
      link.download = cnnwPngName(el);
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

const CNNW_NO_KERNEL = "No running kernel: a change here is drawn by the page only (colour map, scale, opacity, "
  + "hover). What needs the model (another layer or image, a new computation) is not done: start the kernel and "
  + "run the cell again.";
const CNNW_PUT_BACK = "needs the kernel, which is not running: the change was put back (start the kernel and run the "
  + "cell again).";

/** Whether two trait values are the same (DataViews by their bytes, the rest as JSON). */
function cnnwSame(a, b) {
  if (a === b) return true;
  if (a instanceof DataView && b instanceof DataView) {
    if (a.byteLength !== b.byteLength) return false;
    for (let i = 0; i < a.byteLength; i += 1) if (a.getUint8(i) !== b.getUint8(i)) return false;
    return true;
  }
  try {
    return JSON.stringify(a) === JSON.stringify(b);
  } catch (error) {
    return false;
  }
}

/**
 * The view's model, unchanged where no kernel is expected (an exported page), else with set, save_changes and send
 * that, once the notebook's kernel is gone (shut down: the widget manager has none, or it is dead or disposed), keep
 * a change in the page instead of failing to send it (ipywidgets logs "Could not send widget sync message" for
 * each), and say once, at the top of the view, what that means. Browser-only controls keep working with no console
 * error. A change of a trait that needs the kernel is put back, and the widget's error line says so, with the rule
 * the exported HTML uses (js/export_shim.js): the widget syncs the names of those traits in `_kernel_traits`
 * (cnnwidget/widgets/_export.py kernel_traits); a widget that does not sync them keeps every change in the page.
 */
export function cnnwKernelGuard(model, el) {
  const manager = model && model.widget_manager;
  if (!manager || typeof manager !== "object" || !("kernel" in manager)) return model;
  const gone = () => {
    try {
      const k = manager.kernel;
      return !k || k.isDisposed || k.status === "dead";
    } catch (error) {
      return false;
    }
  };
  let note = null;
  const say = () => {
    if (note && note.isConnected) return;
    note = document.createElement("div");
    note.className = "cnnw-no-kernel";
    note.setAttribute("role", "status");
    note.textContent = CNNW_NO_KERNEL;
    note.style.cssText = "padding: 2px 8px; margin-bottom: 4px; font-size: var(--jp-ui-font-size0, 11px); "
      + "border-left: 3px solid var(--jp-warn-color1, #f57c00); background: var(--jp-layout-color2, #eeeeee); "
      + "color: var(--jp-ui-font-color1, #212121);";
    el.prepend(note);
  };
  const before = new Map(); // trait -> its value before the view's first set since the last save_changes
  const remember = (name) => {
    if (!before.has(name)) before.set(name, model.get(name));
  };
  const putBack = () => {
    const kernelTraits = model.get("_kernel_traits");
    const back = Array.isArray(kernelTraits)
      ? [...before].filter(([name, old]) => kernelTraits.includes(name) && !cnnwSame(model.get(name), old)) : [];
    before.clear();
    if (!back.length) return;
    // after the view's own reaction to its change (it may set more), as the exported page does
    setTimeout(() => {
      for (const [name, old] of back) model.set(name, old);
      const text = `${back.map(([name]) => name).join(", ")}: ${CNNW_PUT_BACK}`;
      if (model.get("error") !== undefined) model.set("error", text);
    }, 0);
  };
  return new Proxy(model, {
    get(target, prop) {
      if (prop === "set") {
        return (name, value, ...rest) => {
          if (typeof name === "string") remember(name);
          else if (name && typeof name === "object") Object.keys(name).forEach(remember);
          return target.set(name, value, ...rest);
        };
      }
      if (prop === "save_changes" || prop === "send") {
        return (...args) => {
          if (gone()) {
            say();
            if (prop === "save_changes") putBack();
            return undefined;
          }
          if (prop === "save_changes") before.clear();
          return target[prop](...args);
        };
      }
      return Reflect.get(target, prop, target);
    },
  });
}

/** The PNG button's file name: the view's kind (its root's cnnw- class) and the time, so that saving several views
 * (or one view twice) does not give every file the same name: "cnnwidget-grid-20261207-131502.png". */
export function cnnwPngName(el, now = new Date()) {
  const root = el && (el.querySelector ? el.querySelector("[class*='cnnw-']") : null);
  const cls = root ? [...root.classList].find((c) => c.startsWith("cnnw-")) : null;
  const kind = cls ? cls.slice(5).replace(/[^a-z0-9-]/gi, "") : "view";
  const pad = (n) => String(n).padStart(2, "0");
  const stamp = `${now.getFullYear()}${pad(now.getMonth() + 1)}${pad(now.getDate())}-`
    + `${pad(now.getHours())}${pad(now.getMinutes())}${pad(now.getSeconds())}`;
  return `cnnwidget-${kind || "view"}-${stamp}.png`;
}

/** `view` (an anywidget module's default export) with the save-PNG request handler and button added, and its model
 * guarded for a kernel that has gone (cnnwKernelGuard). */
export function __cnnwExportTools(view) {
  if (!view || typeof view.render !== "function") return view;
  return {
    ...view,
    async render(props) {
      const { model, el } = props;
      const cleanup = await view.render({ ...props, model: cnnwKernelGuard(model, el) });
      const onMessage = async (message) => {
        if (!message || message.action !== "cnnw_save_png") return;
        // Every view of the widget gets the request and the kernel keeps the first answer. A view that is not
        // shown (a sidebar panel behind another, a closed tab) answers later, so that a shown one's PNG wins over
        // its "shows nothing" (a widget shown in a cell and in the sidebar failed when the sidebar panel was hidden).
        if (!el.getClientRects().length) await new Promise((resolve) => setTimeout(resolve, CNNW_PNG_HIDDEN_WAIT));
        try {
          const { canvas, count, parts } = await cnnwPngCompose(el);
          const buffer = await (await cnnwPngBlob(canvas)).arrayBuffer();
          model.send({ action: "cnnw_save_png", id: message.id, width: canvas.width, height: canvas.height,
            canvases: count, parts }, undefined, [buffer]);
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
