# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test lint clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/xgpu devices
	$(PY) -m xgpu.demo

# set-up installs these three OpenCL implementations: the tests check that each is listed
XGPU_REQUIRE_DEVICES ?= pocl,intel,oclgrind
export XGPU_REQUIRE_DEVICES

test: setup
	$(PY) -m ruff check xgpu backends kernels tests
	$(PY) -m pytest

lint: setup
	$(PY) -m ruff check xgpu backends kernels tests

clean:
	rm -rf $(VENV) build dist *.egg-info
