// show_in_sidebar's slot (cnnwidget/widgets/sidebar.py). Its model tells the kernel which application the page is,
// as soon as the page has the model (displayed or not). Its view, where the application has no JupyterLab sidebar
// (Jupyter Notebook 7, Voila, VS Code, Colab, ...), shows the widget right here under a one-line note saying so;
// in JupyterLab it shows nothing: the kernel puts the widget in the sidebar (a jupyterlab-sidecar panel) once the
// page has said "JupyterLab".
import { h, mountWidget } from "./dom.js";

const STYLE = `
.cnnw-sidebar-slot { min-width: 0; }
.cnnw-sidebar-slot .cnnw-sidebar-note { padding: 2px 0 4px; font-size: var(--jp-ui-font-size1, 13px);
  color: var(--jp-ui-font-color2, #616161); }
`;

/**
 * The application this page is: PageConfig's appName (JupyterLab writes "JupyterLab", Notebook 7 "Jupyter Notebook";
 * "Voila" for Voila's page (its page config has no appName, but its body has data-voila), "" where there is neither (VS Code, Colab: not a
 * Jupyter server page).
 */
export function applicationName(doc = globalThis.document) {
  const node = doc?.getElementById?.("jupyter-config-data");
  let name = "";
  try {
    name = node ? String(JSON.parse(node.textContent || "{}").appName || "") : "";
  } catch (e) {
    name = "";
  }
  if (!name && doc?.body?.dataset?.voila !== undefined) name = "Voila";
  return name;
}

/** Whether the page has JupyterLab's sidebar that jupyterlab-sidecar puts panels in: only JupyterLab itself. */
export function hasLabSidebar(app) {
  return app === "JupyterLab";
}

function describe(app) {
  if (app === "Jupyter Notebook") return "Jupyter Notebook 7";
  return app || "this front end";
}

/** Tell the kernel which application this page is (once per page; the kernel makes the sidecar for JupyterLab). */
export function report(model, doc = globalThis.document) {
  const app = applicationName(doc);
  if (model.get("app") !== app || !model.get("reported")) {
    model.set({ app, reported: true });
    try {
      model.save_changes();
    } catch (e) {
      // a model restored from a saved notebook with no kernel behind it: there is no one to tell
    }
  }
}

export default {
  // When the model is made in the page, whether or not anything displays it: show_in_sidebar called where its
  // output is not shown (a callback, a thread, code run by another client) still reaches JupyterLab's sidebar.
  initialize({ model }) {
    report(model);
  },
  render({ model, el }) {
    const style = h("style", { text: STYLE });
    const note = h("div", { class: "cnnw-sidebar-note", role: "note" });
    const body = h("div", { class: "cnnw-sidebar-body" });
    const root = h("div", { class: "cnnw-sidebar-slot" }, [style]);
    el.append(root);
    const app = applicationName();
    let unmount = null;
    if (!hasLabSidebar(app)) {
      note.textContent = `No JupyterLab sidebar in ${describe(app)}: "${model.get("title")}" is shown here instead.`;
      root.append(note, body);
      unmount = mountWidget(model, "child", body);
    }
    root.dataset.app = app;
    root.dataset.where = hasLabSidebar(app) ? "sidebar" : "inline";
    report(model); // no-op after initialize's report from this page
    return () => unmount?.();
  },
};
