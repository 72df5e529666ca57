// The view of the widgets made of ipywidgets and bqplot parts (TrainingMonitor, LayerSimilarity): an error box
// (role=alert, the widget's `error` trait) over the widget's `body`, a child widget (an ipywidgets box holding
// its controls and charts) mounted as ipywidgets' own boxes mount their children. Its root carries the widget's
// `css_class` (e.g. "cnnw-similarity"), the hook for page tests and user CSS. Text reaches the page through
// textContent only.
import { baseStyle, errorBox, h, mountWidget, react } from "./dom.js";

const STYLE = baseStyle("cnnw-panel", []) + `
.cnnw-panel { display: flex; flex-direction: column; gap: 4px; min-width: 0; }
`;

export default {
  render({ model, el }) {
    const [error, showError] = errorBox(model);
    const body = h("div", { class: "cnnw-panel-body" });
    const root = h("div", { class: "cnnw-panel" }, [h("style", { text: STYLE }), error, body]);
    const css = model.get("css_class");
    if (css) root.classList.add(css);
    el.replaceChildren(root);
    const unmount = mountWidget(model, "body", body);
    const { dispose } = react(model, [[showError, ["error"]]]);
    return () => {
      dispose();
      unmount();
    };
  },
};
