"""Bundle one ES module from ``js/`` and its helper imports into the single string anywidget's ``_esm`` takes.

anywidget loads ``_esm`` from a blob URL, where ``import ... from "./helpers.js"`` cannot resolve. ``bundle`` inlines
such imports, each helper once and before its importers, and rejects every other import form, so a module that
would not load in the browser fails here, in Python, with the file and line named.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path

# The one import form we inline: named imports of a sibling module (`import { a, b } from "./helpers.js";`),
# on one line or several.
_NAMED_IMPORT = re.compile(
    r"""^import\s*\{(?P<names>[^}]*)\}\s*from\s*(?P<q>["'])\./(?P<file>[\w.-]+\.js)(?P=q)[ \t]*;?[ \t]*$""",
    re.MULTILINE,
)
# Whatever import or re-export is left once the named imports are gone.
_OTHER_IMPORT = re.compile(r"""^[ \t]*import\b.*|^[ \t]*export\b[^=\n]*\bfrom\s*["'].*""", re.MULTILINE)
_EXPORT_DECL = re.compile(r"^export\s+(?=(?:async\s+)?function\b|const\b|let\b|class\b)", re.MULTILINE)
_DECLARED = re.compile(r"^(?:export\s+)?(?:async\s+)?(?:function\*?|const|let|class)\s+(\w+)", re.MULTILINE)

_ALLOWED = 'the only form allowed is import { a, b } from "./helper.js"; (anywidget cannot resolve packages or URLs)'


class BundleError(ValueError):
    """A module in js/ uses a form the bundler cannot turn into one module string."""


def js_dir() -> Path:
    """The folder of our ES modules: ``cnnwidget/_js`` in an installed wheel, ``<repo>/js`` in a source checkout."""
    package = Path(__file__).resolve().parent.parent
    for candidate in (package / "_js", package.parent / "js"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"no ES modules found: neither {package / '_js'} nor {package.parent / 'js'} exists")


def bundle(entry: str) -> str:
    """``js/<entry>`` with its relative helper imports inlined, as one ES module source string.

    Cached per entry; with the environment variable ``CNNWIDGET_DEV=1`` the files are read again on every call.
    """
    if os.environ.get("CNNWIDGET_DEV") == "1":
        return _bundle(js_dir(), entry)
    return _cached_bundle(js_dir(), entry)


@functools.lru_cache(maxsize=None)
def _cached_bundle(root: Path, entry: str) -> str:
    return _bundle(root, entry)


def _bundle(root: Path, entry: str) -> str:
    parts: list[str] = []
    _inline(root, entry, is_entry=True, done=set(), active=[], parts=parts)
    _check_unique_declarations(parts)
    return "\n".join(text for _, text in parts)


def _inline(root: Path, name: str, *, is_entry: bool, done: set, active: list, parts: list) -> set[str]:
    """Append ``name``'s dependencies, then ``name`` itself, to ``parts``; return the names it exports."""
    if name in active:
        raise BundleError(f"circular import: {' -> '.join(active + [name])}")
    path = root / name
    if not path.is_file():
        importer = f" (imported by {active[-1]})" if active else ""
        raise BundleError(f"{path} does not exist{importer}")
    source = path.read_text(encoding="utf-8")
    exported = {m.group(1) for m in _DECLARED.finditer(source) if m.group(0).startswith("export")}
    if name in done:
        return exported
    active.append(name)

    def inline_import(match: re.Match) -> str:
        line = source.count("\n", 0, match.start()) + 1
        names = [n.strip() for n in match["names"].split(",") if n.strip()]
        if not names or not all(re.fullmatch(r"\w+", n) for n in names):
            raise BundleError(f"{name}:{line}: unsupported import {match.group(0)!r}; {_ALLOWED}")
        provided = _inline(root, match["file"], is_entry=False, done=done, active=active, parts=parts)
        missing = set(names) - provided
        if missing:
            raise BundleError(f"{name}:{line}: {match['file']} does not export {', '.join(sorted(missing))}")
        # Newlines in its place keep the file's own line count, so a browser error's line maps back to it.
        return "\n" * match.group(0).count("\n")

    text = _NAMED_IMPORT.sub(inline_import, source)
    other = _OTHER_IMPORT.search(text)
    if other:
        line = text.count("\n", 0, other.start()) + 1
        raise BundleError(f"{name}:{line}: unsupported import {other.group(0).strip()!r}; {_ALLOWED}")
    if not is_entry:
        text = _EXPORT_DECL.sub("", text)
        leftover = re.search(r"^export\b.*", text, re.MULTILINE)
        if leftover:
            raise BundleError(f"{name}: a helper may only export function, const, let or class declarations, "
                              f"not {leftover.group(0)!r}")
    active.pop()
    done.add(name)
    parts.append((name, f"// ---- {name} ----\n{text}"))
    return exported


def _check_unique_declarations(parts: list[tuple[str, str]]) -> None:
    """Inlined files share one scope, so a top-level name declared twice would only fail when the browser loads it."""
    seen: dict[str, str] = {}
    for name, text in parts:
        for declared in _DECLARED.findall(text):
            if declared in seen:
                raise BundleError(f"top-level name {declared!r} is declared in both {seen[declared]} and {name}")
            seen[declared] = name
