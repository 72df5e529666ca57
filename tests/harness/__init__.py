"""Shared test harness for cnnwidget: one headless kernel and one JupyterLab + chromium per test run.

Modules:
  env        the process environment every kernel / server inherits (quiet TF, isolated Jupyter dirs, a kernelspec
             that runs this interpreter); set up once from tests/conftest.py before anything else.
  kernel     KernelHarness: a real ipykernel over jupyter_client, acting as the browser on the wire.
  lab        LabHarness: JupyterLab server + Playwright chromium, with notebook, pixel and websocket helpers.
  notebooks  run_notebook(): execute a .ipynb headless with nbclient.
  frontends  NotebookHarness (Jupyter Notebook 7) and VoilaHarness: LabHarness with another server behind it.
  playwright_shared  the one Playwright driver of the process, shared by lab and frontends.

The fixtures themselves live in tests/conftest.py (`kernel`, `kns`, `lab`, `notebook7`, `voila`); see each module's
docstring for its API.
"""
