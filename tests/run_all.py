"""Every test, in three groups run side by side: `make test` calls this.

The suite is mostly waiting: a JupyterLab page loading, a kernel importing TensorFlow, a notebook's cells
running in their own kernel. Run one after another these waits add up (35 minutes on the 2-core CI machine,
2026-12-07); run side by side, one group's wait is another's compute. Each group is its own pytest process
with its own session fixtures (one JupyterLab + chromium for the browser group, one kernel for the kernel
group), so nothing is shared between them but the cores.

  unit      every test needing no kernel, browser or notebook (the quick set and the slow unit tests)
  browser   the JupyterLab / Notebook 7 / Voila tests (tests/browser and any test using `lab`)
  kernels   the headless-kernel tests and the notebooks run top to bottom

Each group's output goes to tests/_artifacts/run-<group>.log and is printed whole when the group ends; a line
says each group's result and time. The exit status is the worst of the groups'. Arguments after the script
name go to every group (``python tests/run_all.py -x``). ``CNNW_TEST_GROUPS=1`` runs the groups one after
another instead (for a machine with one core, or to read one log at a time).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "tests" / "_artifacts"
GROUPS = {
    "unit": "not kernel and not browser and not notebook",
    "browser": "browser",
    "kernels": "(kernel or notebook) and not browser",
}


def _command(group: str, extra: list[str]) -> list[str]:
    return [sys.executable, "-m", "pytest", "-m", GROUPS[group], "-o", f"cache_dir=.pytest_cache/{group}", *extra]


def _last_line(text: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    return lines[-1].strip("= ") if lines else "(no output)"


def main(extra: list[str]) -> int:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    side_by_side = os.environ.get("CNNW_TEST_GROUPS", "") != "1"
    started = time.monotonic()
    running: dict[str, tuple[subprocess.Popen, Path, float]] = {}
    results: dict[str, tuple[int, float, str]] = {}

    def launch(group: str):
        log = ARTIFACTS / f"run-{group}.log"
        out = open(log, "w")
        proc = subprocess.Popen(_command(group, extra), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
        out.close()
        running[group] = (proc, log, time.monotonic())
        print(f"[{_clock(started)}] {group}: started ({' '.join(_command(group, extra)[3:5])})", flush=True)

    def finish(group: str, code: int):
        proc, log, t0 = running.pop(group)
        text = log.read_text(errors="replace")
        print(f"\n{'#' * 30} {group} (pytest -m {GROUPS[group]!r}) {'#' * 30}\n{text}", flush=True)
        results[group] = (code, time.monotonic() - t0, _last_line(text))
        print(f"[{_clock(started)}] {group}: exit {code} after {results[group][1] / 60:.1f} min", flush=True)

    order = list(GROUPS)
    if side_by_side:
        for group in order:
            launch(group)
        while running:
            for group, (proc, _, _) in list(running.items()):
                code = proc.poll()
                if code is not None:
                    finish(group, code)
            time.sleep(1)
    else:
        for group in order:
            launch(group)
            finish(group, running[group][0].wait())

    print(f"\n{'=' * 30} all groups, {_clock(started)} {'=' * 30}")
    for group in order:
        code, seconds, last = results[group]
        # pytest's 5: no test collected by the marker expression (e.g. extra args selecting one file)
        print(f"{group:8s} exit {code}  {seconds / 60:5.1f} min  {last}")
    codes = [0 if code == 5 else code for code, _, _ in results.values()]
    return max(codes)


def _clock(started: float) -> str:
    s = int(time.monotonic() - started)
    return f"{s // 60:02d}:{s % 60:02d}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
