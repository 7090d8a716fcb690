# Two commands do all set-up on a fresh machine: `make demo` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test test-full test-cuda lint clean bench-deps bench

setup:
	@bash scripts/setup.sh

demo: setup
	$(VENV)/bin/xgpu devices
	$(PY) -m xgpu.tools.demo

# set-up installs these four OpenCL implementations (rusticl: Mesa's, on llvmpipe): the tests check that each is listed
XGPU_REQUIRE_DEVICES ?= pocl,intel,oclgrind,rusticl
export XGPU_REQUIRE_DEVICES

# ruff, mypy over the installed layout (scripts/typecheck.py), then the suite on two processes (one test
# file each at a time): float32 on every device, the other dtypes and the offline targets rotated
# (tests/conftest.py). `make test-full` crosses every device, dtype, CUDA architecture and GPU target.
PYTEST_JOBS ?= 2
test: setup
	$(PY) -m ruff check xgpu backends kernels tests
	$(PY) scripts/typecheck.py
	$(PY) -m pytest -n $(PYTEST_JOBS) --dist loadfile

test-full: setup
	XGPU_TEST_FULL=1 $(PY) -m pytest -n $(PYTEST_JOBS) --dist loadfile

# On a machine with an NVIDIA GPU, driver and CUDA toolkit: pycuda, then the whole suite, the parity
# matrix and the GEMM / conv2d sweeps beside cuBLAS / cuDNN on the CUDA devices, results in cuda-check/
# (scripts/cuda_check.sh, docs/cuda.md). The sweeps need PyTorch's CUDA build in .venv.
test-cuda: setup
	$(PY) -m pip install -q -e '.[cuda]'
	PYTHON=$(PY) bash scripts/cuda_check.sh cuda-check

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
