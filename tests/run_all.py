"""Every test, in three groups run side by side: `make test` calls this.

The suite is mostly waiting: a JupyterLab page loading, a kernel importing TensorFlow, a notebook's cells
running in their own kernel. Run one after another these waits add up (35 minutes on the 2-core CI machine,
2026-12-07); run side by side, one group's wait is another's compute. Each group is its own pytest process
with its own session fixtures (one JupyterLab + chromium for the browser group, one kernel for the kernel
group), so nothing is shared between them but the cores.

  unit      every test needing no kernel, browser or notebook (the quick set and the slow unit tests)
  browser   the JupyterLab / Notebook 7 / Voila tests (tests/browser and any test using `lab`)
  kernels   the headless-kernel tests, the notebooks run top to bottom, and the unit tests that start fresh Python
            processes of their own (marker `processes`: two logical devices, TF_CONFIG workers)

The unit group is the long pole (24.7 min on 2 cores, 2026-12-07; browser 17.4, kernels 13.3; a later run: unit 30.6,
browser 21.5, kernels 18.7): the tests that start processes of their own (about 200 s) run in the kernels group,
which ends first. Splitting it in two
processes by file, balanced by measured seconds, made the whole run slower (26.9 min: unit 26.9 and 24.5, browser
23.1, kernels 19.6): the suite is bound by the two cores (about 42 CPU minutes in all), so a fourth process only
adds contention. Each group's summary line gives its CPU minutes beside its wall minutes (os.wait4's rusage of
the group's process tree), and tests/_artifacts/durations.json each test file's seconds (setup + call + teardown,
recorded by the conftest) per group: where to cut work next.

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
GROUPS = {
    "unit": "not kernel and not browser and not notebook and not processes",
    "browser": "browser",
    "kernels": "(kernel or notebook or processes) and not browser",
}


def _command(group: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-m", GROUPS[group], "-o", f"cache_dir=.pytest_cache/{group}", *extra]


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip("= ") if lines else "(no output)"


def main(extra: list[str]) -> int:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("durations*.json"):
        old.unlink()
    side_by_side = os.environ.get("CNNW_TEST_GROUPS", "") != "1"
    started = time.monotonic()
    running: dict[str, tuple[subprocess.Popen, Path, float]] = {}
    results: dict[str, tuple[int, float, float, str]] = {}

    def launch(group: str):
        log = ARTIFACTS / f"run-{group}.log"
        out = open(log, "w")
        env = dict(os.environ, CNNW_DURATIONS_OUT=str(ARTIFACTS / f"durations-{group}.json"))
        proc = subprocess.Popen(_command(group, extra), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
        out.close()
        running[group] = (proc, log, time.monotonic())
        print(f"[{_clock(started)}] {group}: started (-m {GROUPS[group]!r})", flush=True)

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

    order = list(GROUPS)
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
    durations = {g: json.loads((ARTIFACTS / f"durations-{g}.json").read_text()) for g in order
                 if (ARTIFACTS / f"durations-{g}.json").exists()}
    (ARTIFACTS / "durations.json").write_text(json.dumps(durations, indent=1) + "\n")
    codes = [0 if code == 5 else code for code, _, _, _ in results.values()]
    return max(codes)


def _clock(started: float) -> str:
    s = int(time.monotonic() - started)
    return f"{s // 60:02d}:{s % 60:02d}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
