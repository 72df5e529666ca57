# Two commands a person needs (see README.md):
#   make lab    set everything up, open JupyterLab on notebooks/quickstart.ipynb
#   make test   set everything up, run every test (node, unit, kernel, notebooks, browser)
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PORT   ?= 8888

.PHONY: lab test test-quick setup js-test clean

$(VENV)/.installed: pyproject.toml
	@echo "Setting up $(VENV): TensorFlow, JupyterLab and the test tools (about 5 minutes the first time; later runs skip this)."
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,lab]"
	touch $@

setup: $(VENV)/.installed

# Jupyter refuses to start as root without --allow-root (containers and CI machines run as root).
ROOT_FLAG = $(if $(filter 0,$(shell id -u)),--allow-root)

lab: setup
	$(PY) -m jupyterlab --ServerApp.root_dir=. --ServerApp.port=$(PORT) $(ROOT_FLAG) notebooks/quickstart.ipynb

js-test:
	node --test js/

# Three pytest processes side by side (unit, browser, kernels + notebooks): see tests/run_all.py.
test: setup js-test
	$(PY) tests/run_all.py

# The quick set: unit tests only, no kernel, browser or notebooks; under a minute.
test-quick: setup
	$(PY) -m pytest -m "not slow and not kernel and not browser and not notebook"

clean:
	rm -rf $(VENV) build dist *.egg-info
