// The page side of an exported widget (cnnwidget/widgets/_export.py writes the file): no kernel, no network.
// `StaticModel` is the part of the anywidget model API our views use (get, set, on/off "change:x", save_changes,
// send, widget_manager); `StaticManager` builds the models of child widgets (bqplot figures, ipywidgets boxes)
// with the installed ipywidgets/bqplot code loaded by js/export_amd.js, and their views; then each anywidget
// module's render() draws into the page. A change that needs the kernel is put back and the view's error box says
// so: a static copy never shows an old result under a new label.

const data = JSON.parse(document.getElementById("cnnw-export-data").textContent);
const KERNEL_NOTE = "needs the notebook's kernel: this is a static copy (exported HTML); the change was not applied.";

function decode(base64) {
  const text = atob(base64);
  const bytes = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i += 1) bytes[i] = text.charCodeAt(i);
  return new DataView(bytes.buffer);
}

/** The model's state with its binary buffers put back at their paths (as DataViews, as the kernel sends them). */
function stateOf(spec) {
  const state = structuredClone(spec.state);
  for (const { path, data: encoded } of spec.buffers) {
    let node = state;
    for (const key of path.slice(0, -1)) node = node[key];
    node[path[path.length - 1]] = decode(encoded);
  }
  return state;
}

function same(a, b) {
  if (a instanceof DataView && b instanceof DataView) {
    if (a.byteLength !== b.byteLength) return false;
    for (let i = 0; i < a.byteLength; i += 1) if (a.getUint8(i) !== b.getUint8(i)) return false;
    return true;
  }
  return a === b || JSON.stringify(a) === JSON.stringify(b);
}

function notice(text) {
  const box = document.getElementById("cnnw-export-notices");
  if (!box || [...box.children].some((p) => p.textContent === text)) return;
  const p = document.createElement("p");
  p.setAttribute("role", "status");
  p.textContent = text;
  box.append(p);
}

class StaticModel {
  constructor(id, spec, manager) {
    this.model_id = id;
    this.widget_manager = manager;
    this.state = stateOf(spec);
    this.saved = { ...this.state };
    this.kernelTraits = new Set(spec.kernel_traits ?? []);
    this.staticTraits = new Set(spec.static_traits ?? []);
    this.changed = new Set();
    this.listeners = new Map();
  }

  get(name) {
    return this.state[name];
  }

  set(name, value) {
    if (typeof name === "object" && name !== null) {
      for (const [k, v] of Object.entries(name)) this.set(k, v);
      return;
    }
    const old = this.state[name];
    this.state[name] = value;
    this.changed.add(name);
    if (!same(old, value)) this.emit(`change:${name}`, value);
  }

  save_changes() {
    const names = [...this.changed];
    this.changed.clear();
    const needKernel = names.filter((n) => this.kernelTraits.has(n) && !same(this.state[n], this.saved[n]));
    for (const name of names) if (!needKernel.includes(name)) this.saved[name] = this.state[name];
    if (needKernel.length && this.widget_manager.showVariant(this)) {
      for (const name of names) this.saved[name] = this.state[name];
      return;
    }
    if (needKernel.length) {
      // put the values back (the view redraws its controls from them) and say why
      setTimeout(() => {
        for (const name of needKernel) {
          this.state[name] = this.saved[name];
          this.emit(`change:${name}`, this.saved[name]);
        }
        // said once: in the widget's own error line when it has one (beside what was clicked), else on the page
        if ("error" in this.state) this.set("error", `${needKernel.join(", ")}: ${KERNEL_NOTE}`);
        else notice(`${needKernel.join(", ")}: ${KERNEL_NOTE}`);
      }, 0);
    }
  }

  send(content) {
    const action = content && content.action;
    if (action === "cnnw_save_png") return; // the answer to a kernel's request: no kernel here
    const text = `${action ? `"${action}"` : "this"}: ${KERNEL_NOTE}`;
    if ("error" in this.state) this.set("error", text);
    else notice(text);
  }

  on(event, callback) {
    for (const name of event.split(" ")) {
      if (!this.listeners.has(name)) this.listeners.set(name, new Set());
      this.listeners.get(name).add(callback);
    }
  }

  off(event, callback) {
    if (!event) {
      this.listeners.clear();
      return;
    }
    for (const name of event.split(" ")) {
      if (callback) this.listeners.get(name)?.delete(callback);
      else this.listeners.delete(name);
    }
  }

  emit(event, value) {
    for (const callback of [...(this.listeners.get(event) ?? [])]) callback(value);
    if (event.startsWith("change:")) for (const callback of [...(this.listeners.get("change") ?? [])]) callback();
  }
}

/** A view of a StaticModel: its module rendered into a div (also usable as an ipywidgets child view). */
class StaticView {
  constructor(model) {
    this.model = model;
    this.el = document.createElement("div");
    this.el.className = "cnnw-export-widget";
    this.cleanup = null;
    this.luminoWidget = undefined;
  }

  async render() {
    const esm = this.model.get("_esm");
    if (typeof esm !== "string" || !esm) throw new Error("the widget has no ES module");
    const css = this.model.get("_css");
    if (typeof css === "string" && css) {
      const style = document.createElement("style");
      style.textContent = css;
      this.el.append(style);
    }
    const url = URL.createObjectURL(new Blob([esm], { type: "text/javascript" }));
    let module;
    try {
      module = await import(url);
    } finally {
      URL.revokeObjectURL(url);
    }
    let view = module.default;
    if (typeof view === "function") view = await view();
    if (view && typeof view.initialize === "function") await view.initialize({ model: this.model });
    const host = document.createElement("div");
    this.el.append(host);
    this.cleanup = await view.render({ model: this.model, el: host });
  }

  trigger() {}

  processLuminoMessage() {}

  remove() {
    if (typeof this.cleanup === "function") this.cleanup();
    this.el.remove();
  }
}

/**
 * A child widget's model (ipywidgets, bqplot) whose changes from its view Python reacts to (`kernel_traits`, e.g.
 * a dropdown tied to the widget): such a change is put back and the page says the kernel is needed. Other
 * changes (a hover, a selection nothing in Python follows) stay in the page.
 */
function guard(model, kernelTraits) {
  if (!kernelTraits.size) return;
  const saved = {};
  for (const name of kernelTraits) saved[name] = model.get(name);
  model.save_changes = function () {
    const diff = this._buffered_state_diff ?? {};
    this._buffered_state_diff = {};
    const refused = Object.keys(diff).filter((n) => kernelTraits.has(n) && !same(diff[n], saved[n]));
    if (!refused.length) return;
    setTimeout(() => {
      for (const name of refused) this.set(name, saved[name]);
      this._buffered_state_diff = {};
      const label = this.get("description") || this.name || "a control";
      notice(`${label} (${refused.join(", ")}): ${KERNEL_NOTE}`);
    }, 0);
  };
  model.on("cnnw:variant", () => {
    for (const name of kernelTraits) saved[name] = model.get(name);
  });
}

const LIBRARY_OF = {
  "@jupyter-widgets/base": "@jupyter-widgets/extension",
  "@jupyter-widgets/controls": "@jupyter-widgets/extension",
  "@jupyter-widgets/output": "@jupyter-widgets/extension",
  bqplot: "bqplot",
  bqscales: "bqscales",
};

class StaticManager {
  constructor(models) {
    this.specs = models;
    this.models = new Map();
    this.cssLoaded = false;
  }

  library(module) {
    const name = LIBRARY_OF[module];
    if (!name || !window.cnnwAmd || !window.cnnwAmd.has(name)) {
      throw new Error(`the JavaScript of ${module} is not in this file`);
    }
    const lib = window.cnnwAmd.load(name);
    if (name === "@jupyter-widgets/extension" && !this.cssLoaded) {
      this.cssLoaded = true;
      // inserts the ipywidgets CSS (the notebook hooks it also sets up find nothing to hook in a static page)
      try {
        lib.load_ipython_extension?.();
      } catch (error) {
        console.warn("cnnwidget export: widget CSS", error);
      }
    }
    return lib;
  }

  loadClass(name, module) {
    const lib = this.library(module);
    if (!lib[name]) throw new Error(`${name} is not in ${module}`);
    return lib[name];
  }

  /**
   * If `model` (the exported widget) now asks for one of the settings held in the file (`variants`), show it: the
   * models that differ in it take its state. Returns whether one was found.
   */
  showVariant(model) {
    const variants = data.variants;
    if (!variants || model.model_id !== data.root) return false;
    const entry = variants.entries.find((e) => variants.keys.every((k) => same(e.values[k], model.get(k))));
    if (!entry) return false;
    this.applying = (this.applying ?? Promise.resolve()).then(() => this.apply(entry)).catch((error) => {
      console.warn("cnnwidget export: variant", error);
      notice(`This setting could not be shown: ${error.message ?? error}`);
    });
    if ("error" in model.state && model.get("error")) model.set("error", "");
    return true;
  }

  async apply(entry) {
    for (const [id, spec] of Object.entries(entry.models)) {
      this.specs[id] = spec;
      if (!this.models.has(id)) continue; // made from its new spec when a view asks for it
      const model = await this.models.get(id);
      if (model instanceof StaticModel) {
        const state = stateOf(spec);
        for (const [name, value] of Object.entries(state)) {
          // what the person chose in the page (colour map, opacity) stays; the rest is the variant's
          if (name === "_esm" || model.staticTraits.has(name) || same(model.state[name], value)) continue;
          model.state[name] = value;
          model.saved[name] = value;
          model.emit(`change:${name}`, value);
        }
      } else {
        const Model = this.loadClass(spec.model_name, spec.model_module);
        model.set(await Model._deserialize_state(stateOf(spec), this));
        model._buffered_state_diff = {};
        model.trigger("cnnw:variant");
      }
    }
  }

  get_model(id) {
    if (!this.models.has(id)) this.models.set(id, this.make(id));
    return this.models.get(id);
  }

  async make(id) {
    const spec = this.specs[id];
    if (!spec) throw new Error(`widget ${id} is not in this file`);
    if (spec.model_module === "anywidget") return new StaticModel(id, spec, this);
    const Model = this.loadClass(spec.model_name, spec.model_module);
    const attributes = await Model._deserialize_state(stateOf(spec), this);
    const model = new Model(attributes, { widget_manager: this, model_id: id, comm: undefined });
    model.name = spec.model_name;
    model.module = spec.model_module;
    guard(model, new Set(spec.kernel_traits ?? []));
    return model;
  }

  async create_view(model, options = {}) {
    if (model instanceof StaticModel) {
      const view = new StaticView(model);
      await view.render();
      const base = this.tryLibrary("@jupyter-widgets/base");
      if (base?.JupyterLuminoWidget) view.luminoWidget = new base.JupyterLuminoWidget({ node: view.el, view });
      return view;
    }
    const View = this.loadClass(model.get("_view_name"), model.get("_view_module"));
    const view = new View({ model, options });
    view.listenTo(model, "destroy", view.remove);
    await view.render();
    return view;
  }

  tryLibrary(module) {
    try {
      return this.library(module);
    } catch {
      return null;
    }
  }

  // the parts of ipywidgets' manager API that views and models call
  callbacks() {
    return {};
  }

  setViewOptions(options) {
    return options || {};
  }

  resolveUrl(url) {
    return Promise.resolve(url);
  }

  display_view(view) {
    return Promise.resolve(view);
  }

  get_state() {
    return Promise.resolve({});
  }

  has_model(id) {
    return id in this.specs;
  }

  inline_sanitize(s) {
    return s;
  }
}

async function main() {
  const manager = new StaticManager(data.models);
  const root = document.getElementById("cnnw-export-root");
  try {
    const model = await manager.get_model(data.root);
    const view = await manager.create_view(model);
    root.append(view.el);
    window.cnnwExport = { manager, model, view, ready: true };
  } catch (error) {
    const p = document.createElement("p");
    p.setAttribute("role", "alert");
    p.textContent = `This export could not be drawn: ${error && error.message ? error.message : error}`;
    root.append(p);
    window.cnnwExport = { manager, error: String(error), ready: true };
    throw error;
  }
}

main();
