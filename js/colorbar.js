// A colour bar: a colour map's gradient, the values its two ends stand for and what those values are, so a heat map
// or a grid of feature maps can be read without hovering. Views put one beside what they draw; text goes in through
// textContent only. The node carries data-lo, data-hi and data-label for page tests.

const BAR_PX = 96; // the gradient's width on the page
const STOPS = 16; // colour stops of the CSS gradient: the table sampled evenly (no canvas: views' tests and PNG
// export count a view's canvases, and a bar is not a picture of the data)

/** A bar end's number: 3 significant digits, exponent form for very small or large magnitudes; text as given. */
export function barNumber(v) {
  if (typeof v === "string") return v;
  const a = Math.abs(v);
  if (!Number.isFinite(v) || a === 0) return String(v);
  return a < 1e-3 || a >= 1e5 ? v.toExponential(2) : String(Number(v.toPrecision(3)));
}

/** A CSS linear-gradient through STOPS evenly spaced entries of a 256-entry RGB colour table (768 bytes). */
export function gradientCss(table) {
  const stops = Array.from({ length: STOPS }, (_, i) => {
    const c = Math.round((255 * i) / (STOPS - 1)) * 3;
    return `rgb(${table[c]}, ${table[c + 1]}, ${table[c + 2]}) ${((100 * i) / (STOPS - 1)).toFixed(1)}%`;
  });
  return `linear-gradient(to right, ${stops.join(", ")})`;
}

/**
 * A colour bar: returns { node, update({ table, lo, hi, label, title }), hide() }. `table`: the 256-entry colour
 * table (768 bytes, RGB); `lo`, `hi`: what its first and last colour stand for (numbers, or text such as "min");
 * `label`: what the values are ("activation value", "attribution score"); `title`: a longer note on hover.
 */
export function colorBar(className = "") {
  const span = (cls) => {
    const s = document.createElement("span");
    s.className = cls;
    return s;
  };
  // The gradient shrinks (down to a third) before its end values leave its line: in a narrow panel (the 300 px
  // sidebar) the bar wraps as two whole units, the label and "lo [gradient] hi"; as four flex items it broke
  // after "min", or left the max on a line of its own.
  const gradient = span("cnnw-colorbar-gradient");
  Object.assign(gradient.style, { display: "inline-block", width: `${BAR_PX}px`, minWidth: `${BAR_PX / 3}px`,
    height: "10px", border: "1px solid var(--jp-border-color1, #bdbdbd)", flex: "0 1 auto" });
  const label = span("cnnw-colorbar-label");
  const lo = span("cnnw-colorbar-lo");
  const hi = span("cnnw-colorbar-hi");
  for (const end of [lo, hi]) Object.assign(end.style, { flex: "none", whiteSpace: "nowrap" });
  const scale = span("cnnw-colorbar-scale");
  Object.assign(scale.style, { display: "inline-flex", flexWrap: "nowrap", alignItems: "center", gap: "5px",
    minWidth: "0", maxWidth: "100%" });
  scale.append(lo, gradient, hi);
  const node = document.createElement("div");
  node.className = `cnnw-colorbar ${className}`.trim();
  node.setAttribute("role", "img");
  Object.assign(node.style, { display: "flex", flexWrap: "wrap", alignItems: "center", gap: "2px 5px",
    fontSize: "var(--jp-ui-font-size0, 11px)", color: "var(--jp-ui-font-color2, #616161)",
    fontVariantNumeric: "tabular-nums", maxWidth: "100%" });
  node.append(label, scale);
  node.hidden = true;
  return {
    node,
    update({ table, lo: low, hi: high, label: text, title = "" }) {
      gradient.style.background = gradientCss(table);
      const a = barNumber(low);
      const b = barNumber(high);
      label.textContent = text;
      lo.textContent = a;
      hi.textContent = b;
      node.dataset.lo = a;
      node.dataset.hi = b;
      node.dataset.label = text;
      node.title = title;
      node.setAttribute("aria-label", `colour scale of ${text}: ${a} to ${b}`);
      node.hidden = false;
    },
    hide() {
      node.hidden = true;
    },
  };
}
