import { test } from "node:test";
import assert from "node:assert/strict";
import { applicationName, hasLabSidebar } from "./sidebar_slot.js";

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
