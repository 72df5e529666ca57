// A small AMD loader for an exported page (cnnwidget/widgets/_export.py): the installed classic-notebook bundles of
// ipywidgets (widgetsnbextension), bqplot and bqscales are AMD modules (`define(deps, factory)`); each is put in the
// page after `cnnwAmd.next(name)`, which names its anonymous define. Nothing is fetched: a module that is not in the
// page is an error. The widgets bundle runs the classic notebook's extension code when loaded, so the few globals
// it touches (requirejs.config, Jupyter.version) are given here, and its CSS is inserted by calling its
// load_ipython_extension with stand-ins for the notebook's modules.
(function () {
  "use strict";
  const registry = new Map();
  let nextName = null;
  // Module names the bundles import, mapped to the name they are registered under in this page.
  const aliases = {
    "@jupyter-widgets/base": "@jupyter-widgets/extension",
    "@jupyter-widgets/controls": "@jupyter-widgets/extension",
    "@jupyter-widgets/output": "@jupyter-widgets/extension",
    "nbextensions/jupyter-js-widgets/extension": "@jupyter-widgets/extension",
  };
  // Stand-ins for the classic notebook's modules (the widgets bundle asks for them for its notebook integration,
  // which a static page does not use).
  const notebookStandIns = {
    "base/js/namespace": {
      notebook: { container: { on() {} }, kernel: null, keyboard_manager: { actions: { register() {} } } },
      version: "6.5.0",
    },
    "base/js/events": { on() {} },
    "notebook/js/outputarea": { OutputArea: { prototype: { register_mime_type() {} } } },
  };

  function define(name, deps, factory) {
    if (typeof name !== "string") {
      factory = deps;
      deps = name;
      name = nextName;
      nextName = null;
    }
    if (typeof deps === "function") {
      factory = deps;
      deps = [];
    }
    if (!name) throw new Error("cnnwidget export: an anonymous AMD module with no name given");
    registry.set(name, { deps, factory, done: false, exports: undefined });
  }
  define.amd = {};

  function load(name) {
    const key = aliases[name] ?? name;
    if (key in notebookStandIns) return notebookStandIns[key];
    const entry = registry.get(key);
    if (!entry) throw new Error(`cnnwidget export: the module ${name} is not in this file`);
    if (!entry.done) {
      const module = { id: key, uri: "", exports: {}, config: () => ({}) };
      const args = entry.deps.map((dep) => (dep === "module" ? module : dep === "exports" ? module.exports
        : dep === "require" ? requirejs : load(dep)));
      const value = typeof entry.factory === "function" ? entry.factory(...args) : entry.factory;
      entry.exports = value === undefined ? module.exports : value;
      entry.done = true;
    }
    return entry.exports;
  }

  // requirejs(deps, callback, errback): resolved from the page only, asynchronously as requirejs does. Modules
  // of the notebook application other than the stand-ins never resolve (their promises stay pending, unused).
  function requirejs(deps, callback, errback) {
    if (typeof deps === "string") return load(deps);
    const known = deps.every((d) => (aliases[d] ?? d) in notebookStandIns || registry.has(aliases[d] ?? d));
    if (!known) return undefined;
    Promise.resolve().then(() => {
      try {
        const mods = deps.map(load);
        if (callback) callback(...mods);
      } catch (error) {
        if (errback) errback(error);
        else console.warn("cnnwidget export:", error);
      }
    });
    return undefined;
  }
  requirejs.config = () => {};

  window.define = define;
  window.requirejs = requirejs;
  window.require = requirejs;
  if (!window.Jupyter) window.Jupyter = { version: "6.5.0" };
  window.cnnwAmd = {
    next(name) {
      nextName = name;
    },
    has: (name) => registry.has(aliases[name] ?? name),
    load,
  };
})();
