// The view of show_in_sidebar's slot (cnnwidget/widgets/sidebar.py): it tells the kernel which application shows
// it, and where that application has no JupyterLab sidebar (Jupyter Notebook 7, Voila, VS Code, Colab, ...) it
// shows the widget right here, under a one-line note saying so. In JupyterLab it shows nothing: the kernel puts the
// widget in the sidebar (a jupyterlab-sidecar panel) once this view has said "JupyterLab".
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
export function applicationName(doc = document) {
  const node = doc.getElementById("jupyter-config-data");
  let name = "";
  try {
    name = node ? String(JSON.parse(node.textContent || "{}").appName || "") : "";
  } catch (e) {
    name = "";
  }
  if (!name && doc.body?.dataset?.voila !== undefined) name = "Voila";
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

export default {
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
    if (model.get("app") !== app || !model.get("reported")) {
      model.set({ app, reported: true });
      model.save_changes();
    }
    return () => unmount?.();
  },
};
