# make demo: set up and serve the demo · make test: set up and run the whole suite
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
TEST_VAR ?= var/test

.PHONY: setup demo test browser bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch is pinned to the CPU wheel 2.13.0 (see DEVELOPERS.md)
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[test]"
	touch $@

browser:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)

demo: setup
	$(PY) manage.py demo

test: setup browser
	rm -rf $(TEST_VAR)
	SLEEPREVIEW_VAR=$(TEST_VAR) $(PY) -m pytest

bench: setup
	$(PY) bench/render.py
	$(PY) bench/import_night.py
	$(PY) bench/baseline.py
	$(PY) bench/agreement.py
	$(PY) bench/inference_gpu.py

clean:
	rm -rf var .pytest_cache
