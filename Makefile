# The two promises: `make demo` and `make test` work on a fresh machine with
# Python 3.11 and pip. Both create .venv when missing and (re)install the
# project when setup.py changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# pytest workers: one per core; TF and Beam spend much of a test in Python.
TEST_WORKERS ?= 2

.PHONY: install chromium test demo bench clean

install: $(INSTALLED)

$(INSTALLED): setup.py
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip setuptools wheel
	$(BIN)/python -m pip install --quiet --editable '.[test]'
	touch $@

# The report's tests render it in headless Chromium: Debian's package, so
# nothing downloads a browser (CI runs make test as root on a fresh machine).
chromium:
	command -v chromium >/dev/null || (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium)

test: $(INSTALLED) chromium
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -q $(PYTEST_ARGS)

demo: $(INSTALLED)
	$(BIN)/img2txt demo

bench: $(INSTALLED)
	for b in decode preprocess train beam caption decoders; do $(BIN)/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
