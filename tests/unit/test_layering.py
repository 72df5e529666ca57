"""Three layers, one direction: cnnwidget/core (Keras, TensorFlow, numpy; no widgets) <- cnnwidget/widgets
(traitlets models; no TensorFlow math) <- js/ (views; no model logic). Read from the source, so a lazy import inside
a function counts as much as one at the top."""

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cnnwidget"
JS = PACKAGE.parent / "js"

WIDGET_LIBRARIES = {"ipywidgets", "traitlets", "anywidget", "bqplot", "sidecar", "IPython", "cnnwidget.widgets"}
MATH_LIBRARIES = {"tensorflow", "keras"}


def _imports(path: Path) -> set[str]:
    """Every module name imported anywhere in the file (absolute; relative imports resolved against the package)."""
    return _imports_of(path.read_text(), ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]))


def _imports_of(text: str, package: str) -> set[str]:
    tree = ast.parse(text)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def _hits(names: set[str], forbidden: set[str]) -> list[str]:
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


@pytest.mark.parametrize("path", sorted(PACKAGE.joinpath("core").rglob("*.py")), ids=lambda p: p.name)
def test_core_imports_no_widget_library(path):
    assert _hits(_imports(path), WIDGET_LIBRARIES) == []


@pytest.mark.parametrize("path", sorted(PACKAGE.joinpath("widgets").rglob("*.py")), ids=lambda p: p.name)
def test_widgets_do_no_tensorflow_math(path):
    assert _hits(_imports(path), MATH_LIBRARIES) == [], "TensorFlow/Keras work belongs in cnnwidget/core"


@pytest.mark.parametrize("path", sorted(JS.glob("*.js")), ids=lambda p: p.name)
def test_views_import_only_other_views_and_helpers(path):
    """A view module imports only relative modules of js/ (no package of model logic, no CDN)."""
    imports = re.findall(r"""^\s*import\s[^'"]*['"]([^'"]+)['"]""", path.read_text(), re.M)
    assert [m for m in imports if not m.startswith("./")] == []


def test_the_rule_sees_a_lazy_relative_widget_import_in_core():
    names = _imports_of("def f():\n    import ipywidgets\n    from ..widgets import _base\n", "cnnwidget.core")
    assert _hits(names, WIDGET_LIBRARIES) == ["cnnwidget.widgets", "cnnwidget.widgets._base", "ipywidgets"]
