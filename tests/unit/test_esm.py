"""The bundler that turns js/<view>.js and its helpers into anywidget's single-module ``_esm`` string."""

import os
import shutil
import subprocess

import pytest

from cnnwidget.widgets import _esm


@pytest.fixture
def js(tmp_path, monkeypatch):
    """A scratch js/ folder that ``bundle`` reads instead of the project's."""
    monkeypatch.setattr(_esm, "js_dir", lambda: tmp_path)
    monkeypatch.setenv("CNNWIDGET_DEV", "1")

    def write(name, text):
        (tmp_path / name).write_text(text, encoding="utf-8")

    return write


def test_inlines_a_helper_shared_by_two_modules_once_before_its_users(js):
    js("base.js", "export const ONE = 1;\n")
    js("left.js", 'import { ONE } from "./base.js";\nexport function left() { return ONE; }\n')
    js("right.js", 'import { ONE } from "./base.js";\nexport function right() { return ONE + 1; }\n')
    js("view.js", 'import { left } from "./left.js";\nimport { right } from "./right.js";\n'
                  "export default { render() { return left() + right(); } };\n")
    out = _esm.bundle("view.js")
    assert out.count("const ONE = 1;") == 1
    order = [out.index(s) for s in ("const ONE", "function left", "function right", "export default")]
    assert order == sorted(order)
    assert "import" not in out


def test_strips_export_from_helpers_and_keeps_the_entry_default_export(js):
    js("helper.js", "export function f() {}\nexport class C {}\nexport const K = 2;\n")
    js("view.js", 'import { f, C, K } from "./helper.js";\nexport default { render() { return [f, C, K]; } };\n')
    out = _esm.bundle("view.js")
    assert "function f() {}" in out and "class C {}" in out and "const K = 2;" in out
    assert out.count("export") == 1 and "export default {" in out


def test_inlines_a_named_import_written_over_several_lines(js):
    js("helper.js", "export const a = 1;\nexport const b = 2;\n")
    js("view.js", 'import {\n  a,\n  b,\n} from "./helper.js";\nexport default { render() { return a + b; } };\n')
    out = _esm.bundle("view.js")
    assert "const a = 1;" in out and "import" not in out


@pytest.mark.parametrize("statement", [
    'import { html } from "lit";',
    'import * as tiles from "./tiles.js";',
    'import helper from "./helper.js";',
    'import { a as b } from "./helper.js";',
    'import { x } from "https://esm.sh/x";',
])
def test_rejects_any_import_but_named_imports_of_a_sibling(js, statement):
    js("helper.js", "export const a = 1;\n")
    js("view.js", f"{statement}\nexport default {{}};\n")
    with pytest.raises(_esm.BundleError, match=r"view\.js:1: unsupported import"):
        _esm.bundle("view.js")


def test_rejects_a_name_the_helper_does_not_export(js):
    js("helper.js", "export const a = 1;\nconst hidden = 2;\n")
    js("view.js", 'import { hidden } from "./helper.js";\nexport default {};\n')
    with pytest.raises(_esm.BundleError, match="does not export hidden"):
        _esm.bundle("view.js")


def test_rejects_two_files_declaring_the_same_top_level_name(js):
    js("helper.js", "const table = 1;\nexport const a = table;\n")
    js("view.js", 'import { a } from "./helper.js";\nconst table = 2;\nexport default { a, table };\n')
    with pytest.raises(_esm.BundleError, match="'table' is declared in both helper.js and view.js"):
        _esm.bundle("view.js")


def test_rejects_a_circular_import(js):
    js("a.js", 'import { b } from "./b.js";\nexport const a = 1;\n')
    js("b.js", 'import { a } from "./a.js";\nexport const b = 2;\n')
    with pytest.raises(_esm.BundleError, match="circular import: a.js -> b.js -> a.js"):
        _esm.bundle("a.js")


def test_finds_the_project_js_folder_in_a_source_checkout():
    assert (_esm.js_dir() / "activation_grid.js").is_file()


VIEWS = sorted(p.name for p in _esm.js_dir().glob("*.js") if "export default" in p.read_text(encoding="utf-8"))


def test_every_widget_view_module_is_found():
    assert {"activation_grid.js", "attribution_map.js", "feature_visualization.js", "filter_grid.js"} <= set(VIEWS)


@pytest.mark.parametrize("view", VIEWS)
def test_the_bundled_view_is_one_valid_es_module(tmp_path, view):
    """node --check on what anywidget gets; without node it skips on a laptop and fails in CI (CI=true)."""
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("node is not installed, and CI is set: the bundled views must be checked in CI")
        pytest.skip("node is not installed")
    module = tmp_path / view.replace(".js", ".bundle.mjs")
    module.write_text(_esm.bundle(view), encoding="utf-8")
    result = subprocess.run([node, "--check", str(module)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
