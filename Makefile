# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-cuda lint clean bench-deps bench

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/xgpu devices
	$(PY) -m xgpu.tools.demo

# set-up installs these four OpenCL implementations (rusticl: Mesa's, on llvmpipe): the tests check that each is listed
XGPU_REQUIRE_DEVICES ?= pocl,intel,oclgrind,rusticl
export XGPU_REQUIRE_DEVICES

# ruff, mypy over the installed layout (scripts/typecheck.py), then the whole suite: about 15-20 minutes
# on 2 cores, most of it the OpenCL devices' GEMM/conv2d tests and every CUDA variant through NVRTC + ptxas
test: setup
	$(PY) -m ruff check xgpu backends kernels tests
	$(PY) scripts/typecheck.py
	$(PY) -m pytest

# On a machine with an NVIDIA GPU, driver and CUDA toolkit: pycuda, then the whole suite and the
# parity matrix on the CUDA devices (docs/cuda.md).
test-cuda: setup
	$(PY) -m pip install -q -e '.[cuda]'
	$(PY) -m pytest --xgpu-backend cuda
	$(VENV)/bin/xgpu parity --backend cuda --html parity-cuda.html

lint: setup
	$(PY) -m ruff check xgpu backends kernels tests
	$(PY) scripts/typecheck.py

clean:
	rm -rf $(VENV) build dist *.egg-info

# The peers that `xgpu bench gemm` measures beside xgpu: CLBlast (Debian's library, pyclblast built
# against it), reikna, and threadpoolctl to say which OpenBLAS kernel numpy runs.
bench-deps: setup
	@dpkg-query -W -f='$${Status}' libclblast-dev 2>/dev/null | grep -q "install ok installed" || \
		{ apt-get update -qq && apt-get install -y -qq libclblast-dev >/dev/null; }
	$(PY) -m pip install -q -e '.[bench]' cython scikit-build-core cmake ninja torch==2.13.0
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) -m pip install -q --no-build-isolation pyclblast

bench: bench-deps
	$(VENV)/bin/xgpu bench gemm --device intel
	$(VENV)/bin/xgpu bench gemm --device pocl
	$(VENV)/bin/xgpu bench conv2d --device intel
	$(VENV)/bin/xgpu bench conv2d --device pocl
