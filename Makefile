# Two commands: `make demo` (set-up + whole pipeline on the embedded corpus) and `make test`.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
JOBS ?= 2
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export NUMBA_CACHE_DIR := $(CURDIR)/.numba_cache
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export OMP_NUM_THREADS ?= 2

.PHONY: install demo serve test browser gl blender lint bench clean

install: $(STAMP) gl

# torch first from its exact pin (CPU wheel), then everything else constrained to it, then the package itself.
$(STAMP): envs/torch.txt envs/requirements.lock pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q -r envs/torch.txt
	$(PY) -m pip install -q -r envs/requirements.lock -c envs/torch.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

demo: install
	$(VENV)/bin/omniges demo --jobs $(JOBS)

serve: install
	$(VENV)/bin/omniges serve

test: install browser
	$(PY) -m pytest -q -m "not slow" $(PYTEST_ARGS)

# The web app's browser test needs Debian's chromium: installed when missing and we can (root + apt); else skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
	      || echo "could not install chromium: the browser test is skipped"; \
	  else echo "chromium not installed (needs root and apt): the browser test is skipped"; fi; }

# The renderer rasterises with OpenGL through EGL, headless (Mesa's llvmpipe on a CPU): Debian's EGL + Mesa.
gl:
	@ldconfig -p 2>/dev/null | grep -q 'libEGL_mesa.so.0' || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri) >/dev/null 2>&1 \
	      || echo "could not install Mesa's EGL: videos need libegl1 libegl-mesa0 libgl1-mesa-dri"; \
	  else echo "Mesa's EGL not installed (needs root and apt): videos need libegl1 libegl-mesa0 libgl1-mesa-dri"; fi; }

# FBX export (--fbx) and the Blender import test need Debian's blender and the numpy its glTF add-on imports
# (large; optional: only `make blender` installs them).
blender:
	@{ command -v blender >/dev/null 2>&1 && /usr/bin/python3 -c 'import numpy' 2>/dev/null; } || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && apt-get install -y -qq blender python3-numpy) >/dev/null 2>&1 || echo "could not install blender"; \
	  else echo "blender not installed (needs root and apt): --fbx is unavailable"; fi; }

lint: install
	$(VENV)/bin/ruff check omniges stages tests benchmarks

bench: install
	for b in benchmarks/bench_*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf data results mlflow.db mlruns .snakemake
