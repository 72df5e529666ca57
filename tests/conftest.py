"""Top-level fixtures shared by every test directory. Helper code lives in tests/harness/ (see its docstrings).

Fixtures
  kernel  session  harness.kernel.KernelHarness: ONE headless ipykernel (sys.executable, cwd = repo root)
  kns     function a fresh namespace in that kernel, widgets in it closed after the test
  lab     session  harness.lab.LabHarness: ONE JupyterLab server + ONE headless chromium; pages, notebook kernels
                   and sessions opened by a test are closed after it (a screenshot is saved on failure)
  notebook7, voila  session  harness.frontends: ONE Jupyter Notebook 7 / ONE Voila server each (+ chromium), started
                   lazily by the first test using them; cleaned up after each test as `lab` is

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
        if names & {"lab", "notebook7", "voila"} or (parts and parts[0] == "browser"):
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


# ---------------------------------------------------------------------------------------------- notebook7, voila
@pytest.fixture(scope="session")
def notebook7(tmp_path_factory):
    """ONE Jupyter Notebook 7 server (harness/frontends.py), started by the first test that asks for it."""
    from harness.frontends import NotebookHarness

    h = NotebookHarness(root_dir=tmp_path_factory.mktemp("notebook7_root"))
    h.start()
    _TIMINGS["notebook7 server"] = h.timings["server"]
    yield h
    h.stop()


@pytest.fixture(scope="session")
def voila(tmp_path_factory):
    """ONE Voila server (harness/frontends.py), started by the first test that asks for it."""
    from harness.frontends import VoilaHarness

    h = VoilaHarness(root_dir=tmp_path_factory.mktemp("voila_root"))
    h.start()
    _TIMINGS["voila server"] = h.timings["server"]
    yield h
    h.stop()


@pytest.fixture(autouse=True)
def _lab_cleanup(request):
    """After each test that used `lab`: screenshot open pages if it failed, close them, stop their kernels."""
    yield
    for name in ("lab", "notebook7", "voila"):
        if name not in request.fixturenames:
            continue
        try:
            h = request.getfixturevalue(name)
        except Exception:
            continue
        h.cleanup(failed_test=request.node.nodeid if _failed(request.node) else None)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    """Set aside (gc.freeze) what is alive once every test module is imported: TensorFlow, Keras, ipywidgets and the
    rest, ~300,000 objects in a unit run. Python's full collections (automatic, every few seconds of a test making
    models, and each gc.collect() of a test) then walk only what the tests made, not those modules again: a full
    collection over them costs ~0.15 CPU-s. Only cyclic garbage collection is affected: nothing alive now is
    garbage, and refcounting frees as before. tests/unit/conftest.py's older_objects_set_aside sets aside again
    after a module that unfreezes."""
    import gc

    gc.collect()
    gc.freeze()


_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    """Seconds per test file (setup + call + teardown): tests/run_all.py gathers them in
    tests/_artifacts/durations.json, where the suite's time goes."""
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration


def pytest_sessionfinish(session):
    import json
    import os

    out = os.environ.get("CNNW_DURATIONS_OUT")
    if out and _FILE_SECONDS:
        Path(out).write_text(json.dumps({k: round(v, 2) for k, v in sorted(_FILE_SECONDS.items())}, indent=1))
