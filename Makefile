# The two promises: `make demo` and `make test` work on a fresh machine with
# Python 3.11 and pip. Both create .venv when missing and (re)install the
# project when setup.py or the lock changed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# Every distribution in .venv, pinned with hashes; `make lock` regenerates it
# from setup.py's ranges (plus pip itself) for CPython 3.11 on Linux x86-64.
LOCK := requirements.lock
UV_VERSION := 0.13.8
LOCK_VENV := .lock-venv
# pytest workers: one per core; TF and Beam spend much of a test in Python.
TEST_WORKERS ?= 2

.PHONY: install lock system-packages test demo flickr8k bench clean

install: $(INSTALLED)

# The lock installs first, exactly (hashes required, nothing resolved); the
# project itself then goes in editable, without dependencies and without an
# isolated build environment, so pip fetches nothing the lock does not name.
$(INSTALLED): setup.py $(LOCK)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation --editable .
	$(BIN)/python -m pip check
	touch $@

lock:
	test -x $(LOCK_VENV)/bin/uv || ($(PYTHON) -m venv $(LOCK_VENV) && $(LOCK_VENV)/bin/python -m pip install --quiet uv==$(UV_VERSION))
	echo pip | $(LOCK_VENV)/bin/uv pip compile setup.py - --extra test --upgrade \
	    --python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes \
	    --custom-compile-command 'make lock' --output-file $(LOCK)

# Debian packages the tests need: chromium renders the report headless (no
# browser download), Java runs METEOR and the PTB tokenizer of pycocoevalcap.
# CI runs make test as root on a fresh machine.
system-packages:
	command -v chromium >/dev/null && command -v java >/dev/null || \
	    (apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium default-jre-headless)

# -rs prints why anything was skipped; tests/conftest.py fails a run that
# skipped a test (nothing here may depend on the machine it runs on).
test: $(INSTALLED) system-packages
	$(BIN)/python -m pytest -n $(TEST_WORKERS) -q -rs $(PYTEST_ARGS)

demo: $(INSTALLED)
	$(BIN)/img2txt demo

# The recommended captioner for real photos (attention), trained and measured on Flickr8k val (80 minutes on 2 cores).
# FLICKR8K: any folder with dataset_flickr8k.json and images/ (the original download works too); METEOR needs Java.
FLICKR8K ?= ../shared/data/flickr8k
flickr8k: $(INSTALLED) system-packages
	$(BIN)/img2txt flickr8k --flickr8k $(FLICKR8K) --output flickr8k_output

bench: $(INSTALLED)
	for b in decode preprocess train beam caption decoders; do $(BIN)/python benchmarks/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) $(LOCK_VENV) build *.egg-info
