"""The wheel ships the backends and templates under xgpu.*, with nothing generic at the top level."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import zipfile

import pytest

from .conftest import ROOT

CORE = sorted((ROOT / "xgpu").rglob("*.py"))
DRIVERS = ("pyopencl", "pycuda", "cuda")


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_imports_no_driver(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        for name in names:
            assert name.split(".")[0] not in DRIVERS, f"{path.name} imports the driver {name}"


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_never_branches_on_a_backend_name(path):
    text = path.read_text()
    found = re.findall(r"""(?:==|!=|\bin)\s*\(?\s*["'](?:opencl|cuda|hip|metal)["']|["'](?:opencl|cuda)["']\s*(?:==|!=)""", text)
    assert not found, f"{path.name} compares with a backend name: {found}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(out), str(ROOT)],
        check=True, capture_output=True, text=True, timeout=600,
    )
    (whl,) = out.glob("xgpu-*.whl")
    return whl


def test_wheel_contents(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops <= {"xgpu", next(t for t in tops if t.endswith(".dist-info"))}, tops
    for required in ("xgpu/backends/opencl/__init__.py", "xgpu/backends/opencl/prelude.mako",
                     "xgpu/backends/cuda/prelude.mako", "xgpu/kernels/axpy/axpy.mako", "xgpu/py.typed",
                     "xgpu/kernels/bench/lowp.mako", "xgpu/tools/gpu_peaks.json"):
        assert required in names, required
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "[xgpu]" in entry_points and "opencl = xgpu.backends.opencl" in entry_points
    assert "[pytest11]" in entry_points


def test_wheel_installs_and_renders_in_a_fresh_venv(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next((venv / "lib").glob("python*/site-packages"))
    # the wheel is a zip: unpacking it into site-packages is what pip does for a pure wheel
    zipfile.ZipFile(wheel).extractall(site)
    deps = [p for p in sys.path if p.endswith("site-packages")]  # numpy, mako, pluggy... from this venv
    code = (
        "import xgpu, xgpu.kernels.axpy as k, numpy as np;"
        "assert 'site-packages' in xgpu.__file__ and '" + str(ROOT) + "' not in xgpu.__file__, xgpu.__file__;"
        "r = xgpu.render(k.TEMPLATE, 'cuda', k._render_defines(np.dtype('float32'), 128));"
        "print(r.text.count('KERNEL void axpy_sum'), sorted(s.name for s in xgpu.list_backends().values()))"
    )
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, cwd=tmp_path,
        env={"PYTHONPATH": ":".join(deps), "PATH": "/usr/bin:/bin"}, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "1 ['cuda', 'opencl']"
