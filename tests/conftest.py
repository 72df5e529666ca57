"""Top-level fixtures shared by every test directory. Helper code lives in tests/harness/ (see its docstrings).

Fixtures
  kernel  session  harness.kernel.KernelHarness: ONE headless ipykernel (sys.executable, cwd = repo root)
  kns     function a fresh namespace in that kernel, widgets in it closed after the test
  lab     session  harness.lab.LabHarness: ONE JupyterLab server + ONE headless chromium; pages, notebook kernels
                   and sessions opened by a test are closed after it (a screenshot is saved on failure)

Markers are added automatically so the quick set (`-m "not slow and not kernel and not browser and not notebook"`)
never pays for a kernel or a browser: a test using `kernel`/`kns` gets `kernel`, one using `lab` gets `browser`,
and tests under tests/kernel/ or tests/browser/ get those markers by location.

Heavy imports (jupyter_client, playwright, TensorFlow) happen only inside fixtures.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import env  # noqa: E402  (stdlib only)

env.setup()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        path = Path(str(item.path)).resolve()
        parts = path.relative_to(env.TESTS).parts if env.TESTS in path.parents else ()
        if names & {"kernel", "kns"} or (parts and parts[0] == "kernel"):
            item.add_marker(pytest.mark.kernel)
        if "lab" in names or (parts and parts[0] == "browser"):
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"_cw_rep_{rep.when}", rep)


_TIMINGS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter):
    if _TIMINGS:
        parts = ", ".join(f"{k} {v:.1f}s" for k, v in _TIMINGS.items())
        terminalreporter.write_line(f"harness start-up: {parts}")
        import json

        (env.artifacts_dir() / "harness-timings.json").write_text(json.dumps(_TIMINGS, indent=1))


def _failed(item) -> bool:
    return any(getattr(getattr(item, f"_cw_rep_{w}", None), "failed", False) for w in ("setup", "call"))


# ---------------------------------------------------------------------------------------------- kernel
@pytest.fixture(scope="session")
def kernel():
    from harness.kernel import KernelHarness

    k = KernelHarness().start()
    _TIMINGS["kernel"] = k.startup_seconds
    yield k
    k.shutdown()


@pytest.fixture
def kns(kernel, request):
    kernel.ensure_alive()
    kernel.drain()
    ns = kernel.namespace()
    yield ns
    try:
        ns.close()
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------- lab
@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    from harness.lab import LabHarness

    h = LabHarness(root_dir=tmp_path_factory.mktemp("lab_root"))
    h.start()
    _TIMINGS["lab server"] = h.timings["server"]
    _TIMINGS["browser"] = h.timings["browser"]
    yield h
    h.stop()


@pytest.fixture(autouse=True)
def _lab_cleanup(request):
    """After each test that used `lab`: screenshot open pages if it failed, close them, stop their kernels."""
    yield
    if "lab" not in request.fixturenames:
        return
    try:
        h = request.getfixturevalue("lab")
    except Exception:
        return
    h.cleanup(failed_test=request.node.nodeid if _failed(request.node) else None)
