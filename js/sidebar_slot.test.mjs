import { test } from "node:test";
import assert from "node:assert/strict";
import { applicationName, hasLabSidebar, report } from "./sidebar_slot.js";

const page = (config, dataset = {}) => ({
  getElementById: (id) => (id === "jupyter-config-data" && config !== null ? { textContent: JSON.stringify(config) } : null),
  body: { dataset },
});

test("the application is PageConfig's appName; Voila by its body; none elsewhere", () => {
  assert.equal(applicationName(page({ appName: "JupyterLab" })), "JupyterLab");
  assert.equal(applicationName(page({ appName: "Jupyter Notebook" })), "Jupyter Notebook");
  assert.equal(applicationName(page({ baseUrl: "/voila/" }, { voila: "voila" })), "Voila");
  assert.equal(applicationName(page(null)), "");
});

test("only JupyterLab has the sidebar jupyterlab-sidecar uses", () => {
  assert.equal(hasLabSidebar("JupyterLab"), true);
  for (const app of ["Jupyter Notebook", "Voila", "", "JupyterLite"]) assert.equal(hasLabSidebar(app), false);
});

function fakeModel(saveThrows = false) {
  const state = { app: "", reported: false };
  const model = { saves: 0, get: (k) => state[k], set: (v) => Object.assign(state, v),
                  save_changes() { model.saves += 1; if (saveThrows) throw new Error("Syncing error: no comm channel defined"); } };
  return model;
}

test("the page reports its application once, and a model with no kernel behind it does not throw", () => {
  const model = fakeModel();
  report(model, page({ appName: "Jupyter Notebook" }));
  report(model, page({ appName: "Jupyter Notebook" }));
  assert.equal(model.get("app"), "Jupyter Notebook");
  assert.equal(model.get("reported"), true);
  assert.equal(model.saves, 1);
  const restored = fakeModel(true);
  assert.doesNotThrow(() => report(restored, page({ appName: "JupyterLab" })));
  assert.equal(applicationName(undefined), "");
});
