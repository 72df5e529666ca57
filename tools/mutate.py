"""Mutation runner: put each bug of tools/mutations.py into a scratch copy of the repo, one at a time, and run the
tests that should catch it. Prints one line per mutation: id, killed / survived / stale, seconds, failing tests.

    .venv/bin/python tools/mutate.py                      # HEAD, quick tier (+ node tests), every mutation
    .venv/bin/python tools/mutate.py --only M03,M04       # some of them
    .venv/bin/python tools/mutate.py --tier slow          # survivors of the quick tier go on to the slow tier
    .venv/bin/python tools/mutate.py --only M08 --from slow --tier browser   # skip the quick tier
    .venv/bin/python tools/mutate.py --ref 6504a6a        # mutate (and test) that commit's tree: the "before" score
    .venv/bin/python tools/mutate.py --list               # the table and whether each snippet still matches

Targeted, not exhaustive: each mutant runs only the test files its entry names (the tests that should catch it
and its module's unit tests), not the whole quick set, so a test elsewhere that would also catch it is not counted.
A tier runs only for mutants the tiers below it left alive, and pytest stops at a mutant's first failure (-x;
``--every-failure`` lists them all). A failure counts as a kill only if the same test passes on the unmutated tree:
each failing test is run there once (node files: the whole file), so work in progress that fails anyway is not
counted, and is deselected to look further.

The tree is ``git archive <ref>`` of the repository unpacked in /tmp/mut-*, never the working tree; tests run there
with PYTHONPATH=<scratch> and cwd=<scratch>. ``cnnwidget.widgets._esm.js_dir()`` finds ``js/`` next to the
imported package, so kernels and JupyterLab started by the browser tier (which inherit PYTHONPATH) load the mutated
JS. Not part of CI.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mutations import MUTATIONS, TIERS, Mutation  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
MARKERS = {
    "quick": "not slow and not kernel and not browser and not notebook",
    "slow": "(slow or kernel or notebook) and not browser",
    "browser": "browser",
}
TIMEOUT = {"quick": 900, "slow": 2400, "browser": 2400}  # seconds per test invocation; a hang counts as a failure


@dataclass
class Outcome:
    id: str
    status: str = "survived"  # killed | survived | stale | untested
    seconds: float = 0.0
    tier: str = ""  # the tier that killed it, or the last tier run
    failing: list = field(default_factory=list)  # tests that failed on the mutant and pass on the clean tree
    notes: list = field(default_factory=list)


# ---------------------------------------------------------------------------------------------- test invocations
def invocations(tree: Path, specs: list[str], tier: str) -> tuple[list[tuple], list[str]]:
    """Specs -> (invocations, missing). An invocation is ("node", files) or ("pytest", args)."""
    plain, keyed, node, missing = [], [], [], []
    for spec in specs:
        first, *rest = shlex.split(spec)
        path, _, test = first.partition("::")
        found = sorted(glob.glob(path, root_dir=tree)) if glob.has_magic(path) else (
            [path] if (tree / path).exists() else [])
        if not found:
            missing.append(spec)
            continue
        items = [f + ("::" + test if test else "") for f in found]
        if path.endswith(".mjs"):
            node += [f for f in items if f not in node]
        elif rest:
            keyed.append(tuple(items + rest))
        else:
            plain += [f for f in items if f not in plain]
    runs = [("node", tuple(node))] if node else []
    runs += [("pytest", tuple(plain))] if plain else []
    runs += [("pytest", k) for k in keyed]
    return runs, missing


def run(tree: Path, python: str, kind: str, args: tuple, tier: str, first: bool = False,
        deselect: tuple = ()) -> tuple[set, str]:
    """Run one invocation in ``tree``: (the ids of failing tests, a short note such as "no tests").

    ``first``: pytest stops at the first failure (-x); ``deselect``: pytest ids left out."""
    if kind == "node":
        cmd = ["node", "--test", "--test-reporter=tap", *args]
    else:
        cmd = [python, "-m", "pytest", "-q", "-rfE", "--tb=no", "-p", "no:cacheprovider", "-m", MARKERS[tier],
               *(["-x"] if first else []), *[f"--deselect={d}" for d in deselect], *args]
    env = dict(os.environ, PYTHONPATH=str(tree) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("CNNWIDGET_DEV", None)
    proc = subprocess.Popen(cmd, cwd=tree, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=TIMEOUT[tier])
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {f"TIMEOUT({TIMEOUT[tier]}s): {' '.join(args)}"}, ""
    if kind == "node":
        failing = {m.group(1).strip() for m in re.finditer(r"^\s*not ok \d+ - (.*)$", out, re.MULTILINE)}
        if proc.returncode and not failing:
            failing = {f"node rc={proc.returncode}"}
        return failing, ""
    failing = {m.group(2) for m in re.finditer(r"^(FAILED|ERROR) (\S+)", out, re.MULTILINE)}
    if proc.returncode == 5:
        return set(), "no tests selected: " + " ".join(args)
    if proc.returncode and not failing:
        tail = " | ".join(out.strip().splitlines()[-3:])
        failing = {f"pytest rc={proc.returncode}: {tail[:200]}"}
    return failing, ""


def is_test_id(name: str) -> bool:
    return name.startswith("tests/")


class CleanResults:
    """Which of a mutant's failing tests also fail on the unmutated tree: each pytest id is run there once, on first
    need; node files and failures that are not a test id (a timeout, a pytest crash) rerun their whole invocation.
    Shared by the workers; call it only with the mutation taken out of ``tree``."""

    def __init__(self):
        self._lock = threading.Lock()
        self._ids: dict = {}  # (test id, tier) -> failed on the clean tree
        self._whole: dict = {}  # (kind, args, tier) -> failing set
        self.seconds = 0.0

    def failing(self, tree: Path, python: str, kind: str, args: tuple, tier: str, failing: set) -> set:
        with self._lock:
            t0 = time.monotonic()
            try:
                if kind == "node" or not all(is_test_id(f) for f in failing):
                    key = (kind, args, tier)
                    if key not in self._whole:
                        self._whole[key] = run(tree, python, kind, args, tier)[0]
                    whole = self._whole[key]
                    if kind == "node":
                        return failing & whole
                    return failing if whole else set()  # a crash or timeout that happens on the clean tree too
                todo = sorted(f for f in failing if (f, tier) not in self._ids)
                if todo:
                    bad = run(tree, python, kind, tuple(todo), tier)[0]
                    crashed = any(not is_test_id(b) for b in bad)
                    for f in todo:
                        self._ids[(f, tier)] = crashed or f in bad
                return {f for f in failing if self._ids[(f, tier)]}
            finally:
                self.seconds += time.monotonic() - t0

    def failing_on_clean(self) -> list:
        return sorted({f"{k[0]} [{k[1]}]" for k, bad in self._ids.items() if bad}
                      | {f"{k[0]} {' '.join(k[1])} [{k[2]}]: {', '.join(sorted(v)[:3])}"
                         for k, v in self._whole.items() if v})


# ---------------------------------------------------------------------------------------------- one mutation
def count(tree: Path, m: Mutation) -> tuple[int, tuple]:
    """How often the snippet occurs in ``tree`` (-1: no such file), and the (old, new) pair to use: the first of
    ``m.variants()`` found exactly once."""
    path = tree / m.file
    if not path.is_file():
        return -1, (m.old, m.new)
    text = path.read_text(encoding="utf-8")
    counts = [(text.count(old), (old, new)) for old, new in m.variants()]
    return next((c for c in counts if c[0] == 1), counts[0])


def mutate(tree: Path, python: str, m: Mutation, tiers: tuple, clean: CleanResults,
           every_failure: bool = False) -> Outcome:
    """Put ``m`` into ``tree``, run its tests tier by tier until one kills it, take it out again.

    By default pytest stops at a mutant's first failure (-x) and the next invocations of that tier are skipped; a
    first failure that also fails on the clean tree is deselected and the invocation run again."""
    out = Outcome(m.id)
    n, (old, new) = count(tree, m)
    if n != 1:
        out.status = "stale"
        out.notes.append(f"{m.file} missing" if n < 0 else f"'old' snippet found {n} times in {m.file}, not once")
        return out
    path = tree / m.file
    original = path.read_text(encoding="utf-8")
    mutant = original.replace(old, new)
    t0 = time.monotonic()
    ran_any = False
    try:
        for tier in tiers:
            runs, missing = invocations(tree, m.tests.get(tier, []), tier)
            out.notes += [f"{tier}: no such test {s}" for s in missing]
            if runs:
                out.tier = tier
            for kind, args in runs:
                deselect: list = []
                while True:
                    path.write_text(mutant, encoding="utf-8")
                    failing, note = run(tree, python, kind, args, tier, first=not every_failure,
                                        deselect=tuple(deselect))
                    path.write_text(original, encoding="utf-8")
                    ran_any = ran_any or not note
                    if note:
                        out.notes.append(note)
                    if not failing:
                        break
                    on_clean = clean.failing(tree, python, kind, args, tier, failing)
                    out.failing += sorted(failing - on_clean)
                    if on_clean:
                        out.notes.append(f"{tier}: not counted, failing on the clean tree too: "
                                         + ", ".join(sorted(on_clean)[:3]))
                    fresh = [f for f in sorted(on_clean) if is_test_id(f) and f not in deselect]
                    if out.failing or every_failure or kind == "node" or not fresh or len(fresh) < len(on_clean):
                        break
                    deselect += fresh
                if out.failing and not every_failure:
                    break
            if out.failing:
                out.status = "killed"
                break
    finally:
        path.write_text(original, encoding="utf-8")
    out.seconds = time.monotonic() - t0
    if not ran_any and out.status != "killed":
        out.status = "untested"
    return out


# ---------------------------------------------------------------------------------------------- main
def scratch_copy(ref: str) -> Path:
    tree = Path(tempfile.mkdtemp(prefix="mut-"))
    archive = subprocess.Popen(["git", "-C", str(REPO), "archive", ref], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(tree)], stdin=archive.stdout, check=True)
    if archive.wait():
        raise SystemExit(f"git archive {ref} failed")
    return tree


def line(o: Outcome, m: Mutation) -> str:
    shown = ", ".join(o.failing[:3]) + (f" (+{len(o.failing) - 3} more)" if len(o.failing) > 3 else "")
    notes = f"  [{'; '.join(o.notes)}]" if o.notes else ""
    return f"{o.id:5} {o.status:8} {o.seconds:6.1f}s  {o.tier or '-':7}  {shown}{notes}"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", help="comma-separated ids, e.g. M03,M04")
    p.add_argument("--tier", choices=TIERS, default="quick", help="the highest tier to run (default quick)")
    p.add_argument("--from", dest="start", choices=TIERS, default="quick",
                   help="the lowest tier to run, e.g. slow for mutants already known to survive the quick tier")
    p.add_argument("--ref", default="HEAD", help="git ref whose tree is mutated (default HEAD)")
    p.add_argument("-j", type=int, default=1, help="mutants at once, each in its own scratch copy (default 1)")
    p.add_argument("--python", default=str(REPO / ".venv" / "bin" / "python"))
    p.add_argument("--list", action="store_true", help="print the table and each snippet's match count; no tests")
    p.add_argument("--json", help="also write the outcomes to this file")
    p.add_argument("--every-failure", action="store_true",
                   help="run every test of every invocation and list every failure (default: stop at the first kill)")
    p.add_argument("--keep", action="store_true", help="keep the scratch copies")
    a = p.parse_args(argv)

    chosen = MUTATIONS
    if a.only:
        ids = [s.strip() for s in a.only.split(",") if s.strip()]
        unknown = [i for i in ids if i not in {m.id for m in MUTATIONS}]
        if unknown:
            p.error(f"unknown mutation ids {unknown}; known: {', '.join(m.id for m in MUTATIONS)}")
        chosen = [m for m in MUTATIONS if m.id in ids]
    tiers = TIERS[TIERS.index(a.start):TIERS.index(a.tier) + 1]
    if not tiers:
        p.error(f"--from {a.start} is above --tier {a.tier}")
    sha = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", a.ref], capture_output=True, text=True,
                         check=True).stdout.strip()
    trees = [scratch_copy(a.ref) for _ in range(max(1, a.j) if not a.list else 1)]
    try:
        if a.list:
            for m in chosen:
                n, _ = count(trees[0], m)
                print(f"{m.id:5} {'ok' if n == 1 else 'STALE (' + str(n) + ')':10} {m.file}: {m.description}")
            return 0
        print(f"# mutate {sha} ({a.ref}), tiers {'+'.join(tiers)}, {len(chosen)} mutations, -j {len(trees)}, "
              f"scratch {trees[0]}")
        print("# targeted: each mutant runs only the tests tools/mutations.py names for it, not the whole suite")
        print(f"# {'id':5} {'status':8} {'secs':>7}  {'tier':7}  failing tests (pass on the clean tree)")
        clean, free, lock, outcomes = CleanResults(), list(trees), threading.Lock(), {}

        def work(m):
            with lock:
                tree = free.pop()
            try:
                o = mutate(tree, a.python, m, tiers, clean, a.every_failure)
            finally:
                with lock:
                    free.append(tree)
            with lock:
                outcomes[m.id] = o
                print(line(o, m), flush=True)
            return o

        t0 = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(trees)) as pool:
            list(pool.map(work, chosen))
        main_ids = [m.id for m in chosen if not m.extra]
        killed = [i for i in main_ids if outcomes[i].status == "killed"]
        extras = [m.id for m in chosen if m.extra]
        print(f"# score {sha}, tiers {'+'.join(tiers)}: {len(killed)}/{len(main_ids)} main mutations killed"
              + (f"; extras killed {sum(outcomes[i].status == 'killed' for i in extras)}/{len(extras)}"
                 if extras else "")
              + f"; {time.monotonic() - t0:.0f} s ({clean.seconds:.0f} s of it on the clean tree)")
        for status in ("survived", "stale", "untested"):
            ids = [m.id for m in chosen if outcomes[m.id].status == status]
            if ids:
                print(f"# {status}: {' '.join(ids)}")
        for name in clean.failing_on_clean():
            print(f"# failing on the clean tree (not counted as kills): {name}")
        if a.json:
            Path(a.json).write_text(json.dumps({"ref": a.ref, "sha": sha, "tiers": tiers,
                                                "outcomes": [vars(outcomes[m.id]) for m in chosen]}, indent=1))
        return 0
    finally:
        if not a.keep:
            for tree in trees:
                shutil.rmtree(tree, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
