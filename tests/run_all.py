"""Every test, in three groups run side by side: `make test` calls this.

The suite is mostly waiting: a JupyterLab page loading, a kernel importing TensorFlow, a notebook's cells
running in their own kernel. Run one after another these waits add up (35 minutes on the 2-core CI machine,
2026-12-07); run side by side, one group's wait is another's compute. Each group is its own pytest process
with its own session fixtures (one JupyterLab + chromium for the browser group, one kernel for the kernel
group), so nothing is shared between them but the cores.

  unit-1, unit-2  every test needing no kernel, browser or notebook (the quick set and the slow unit tests),
                  split by file into two processes of about equal time (tests/durations.json, see below)
  browser         the JupyterLab / Notebook 7 / Voila tests (tests/browser and any test using `lab`)
  kernels         the headless-kernel tests and the notebooks run top to bottom

The unit tests are one third of the work but were the long pole (24.7 of 24.7 minutes on the 2-core CI with three
groups, 2026-12-07, while the browser group ended at 17.4 and the kernels at 13.3): two processes share their
files, whole files each (a module's fixtures are set up once), balanced by each file's seconds in the last
measured run. Every run writes those seconds to tests/_artifacts/durations.json (the conftest records them);
copy it over tests/durations.json to rebalance. A file not listed there counts as 5 s.

Each group's output goes to tests/_artifacts/run-<group>.log and is printed whole when the group ends; a line
says each group's result and time. The exit status is the worst of the groups'. Arguments after the script
name go to every group (``python tests/run_all.py -x``). ``CNNW_TEST_GROUPS=1`` runs the groups one after
another instead (for a machine with one core, or to read one log at a time).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "_artifacts"
UNIT = "not kernel and not browser and not notebook"
GROUPS = {
    "unit-1": UNIT,
    "unit-2": UNIT,
    "browser": "browser",
    "kernels": "(kernel or notebook) and not browser",
}
DURATIONS = ROOT / "tests" / "durations.json"
UNKNOWN_FILE_SECONDS = 5.0


def split_files(files: list[str], seconds: dict[str, float], parts: int) -> list[list[str]]:
    """Files in ``parts`` lists of about equal summed seconds: longest first, each to the lightest list so far."""
    bins: list[tuple[float, list[str]]] = [(0.0, []) for _ in range(parts)]
    for f in sorted(files, key=lambda f: (-seconds.get(f, UNKNOWN_FILE_SECONDS), f)):
        i = min(range(parts), key=lambda j: bins[j][0])
        bins[i] = (bins[i][0] + seconds.get(f, UNKNOWN_FILE_SECONDS), bins[i][1] + [f])
    return [sorted(b) for _, b in bins]


def _unit_files() -> list[list[str]]:
    # tests/kernel and tests/browser hold no unit test (their markers come from where they are)
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").rglob("test_*.py")
                   if not {"_artifacts", "kernel", "browser"} & set(p.relative_to(ROOT / "tests").parts[:-1]))
    seconds = json.loads(DURATIONS.read_text()) if DURATIONS.exists() else {}
    return split_files(files, seconds, 2)


def _command(group: str, extra: list[str], unit_files: list[list[str]]) -> list[str]:
    targets = unit_files[int(group[-1]) - 1] if group.startswith("unit-") and unit_files else []
    return [sys.executable, "-m", "pytest", "-m", GROUPS[group], "-o", f"cache_dir=.pytest_cache/{group}",
            *extra, *targets]


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip("= ") if lines else "(no output)"


def main(extra: list[str]) -> int:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("durations*.json"):
        old.unlink()
    side_by_side = os.environ.get("CNNW_TEST_GROUPS", "") != "1"
    # Arguments naming tests (paths, node ids) choose the tests themselves: one unit group then, not split.
    names_tests = any(not a.startswith("-") for a in extra)
    unit_files = [] if names_tests else _unit_files()
    started = time.monotonic()
    running: dict[str, tuple[subprocess.Popen, Path, float]] = {}
    results: dict[str, tuple[int, float, float, str]] = {}

    def launch(group: str):
        log = ARTIFACTS / f"run-{group}.log"
        out = open(log, "w")
        env = dict(os.environ, CNNW_DURATIONS_OUT=str(ARTIFACTS / f"durations-{group}.json"))
        command = _command(group, extra, unit_files)
        proc = subprocess.Popen(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        out.close()
        running[group] = (proc, log, time.monotonic())
        files = f", {len(unit_files[int(group[-1]) - 1])} files" if group.startswith("unit-") and unit_files else ""
        print(f"[{_clock(started)}] {group}: started (-m {GROUPS[group]!r}{files})", flush=True)

    def finish(group: str, status: int, usage):
        proc, log, t0 = running.pop(group)
        proc.returncode = code = os.waitstatus_to_exitcode(status)
        text = log.read_text(errors="replace")
        print(f"\n{'#' * 30} {group} (pytest -m {GROUPS[group]!r}) {'#' * 30}\n{text}", flush=True)
        # CPU seconds of the group's whole process tree that has been waited for (pytest and its reaped children:
        # nbclient kernels; not the JupyterLab server's kernels): tells waiting from computing.
        cpu = usage.ru_utime + usage.ru_stime
        results[group] = (code, time.monotonic() - t0, cpu, _last_line(text))
        print(f"[{_clock(started)}] {group}: exit {code} after {results[group][1] / 60:.1f} min", flush=True)

    def wait_any():
        while True:
            for group, (proc, _, _) in list(running.items()):
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    return group, status, usage
            time.sleep(1)

    order = [g for g in GROUPS if not (names_tests and g == "unit-2")]
    if side_by_side:
        for group in order:
            launch(group)
        while running:
            finish(*wait_any())
    else:
        for group in order:
            launch(group)
            finish(*wait_any())

    print(f"\n{'=' * 30} all groups, {_clock(started)} {'=' * 30}")
    for group in order:
        code, seconds, cpu, last = results[group]
        # pytest's 5: no test collected by the marker expression (e.g. extra args selecting one file)
        print(f"{group:8s} exit {code}  {seconds / 60:5.1f} min  cpu {cpu / 60:5.1f} min  {last}")
    merged: dict[str, float] = {}  # the unit groups' seconds per file: what the split balances
    for group in (g for g in order if g.startswith("unit-")):
        part = ARTIFACTS / f"durations-{group}.json"
        if part.exists():
            for f, sec in json.loads(part.read_text()).items():
                merged[f] = round(merged.get(f, 0.0) + sec, 2)
    (ARTIFACTS / "durations.json").write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
    codes = [0 if code == 5 else code for code, _, _, _ in results.values()]
    return max(codes)


def _clock(started: float) -> str:
    s = int(time.monotonic() - started)
    return f"{s // 60:02d}:{s % 60:02d}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
