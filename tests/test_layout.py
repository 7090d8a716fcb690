"""The package layout holds: the import graph of the installed ``xgpu`` has no cycle and no forbidden edge.

Layers (docs/architecture.md)::

    xgpu.tools.*                    tools: CLI, benchmarks, tuner search, parity runner, demo
        |  may import anything below
    xgpu.kernels.*, xgpu.backends.* plugins: import only the public API (``xgpu``, ``xgpu.plugin``,
        |                           ``xgpu.errors``, ...), never a private ``xgpu._*`` module
    xgpu.* (the library)            what ``import xgpu`` needs; never imports ``xgpu.tools``

Every ``import`` statement of every module counts, wherever it is: at the top, inside a function, or
under ``if TYPE_CHECKING:`` (a type checker follows those too). Two kinds of edge do not take part in
cycles:

* edges into the package root ``xgpu``, the public facade: it imports the whole library, so any module
  that reads ``xgpu.__version__`` or a kernel that calls ``xgpu.compile`` would otherwise "close" a
  cycle that never runs at import time;
* edges from the plugin packages (``xgpu.kernels.*``, ``xgpu.backends.*``) into the public API modules
  meant for them (``xgpu.plugin``). The core reaches the kernels only through the lazy imports in
  ``xgpu._ops`` (``xgpu.gemm`` and friends, imported on first call) and reaches every plugin through
  entry points; that is the allowed direction, and the kernels import only the public API back.

Any other cycle, and any edge from the library into ``xgpu.tools`` or from a plugin package into a
private ``xgpu._*`` module, fails the test.
"""

from __future__ import annotations

import ast
import importlib.util
import pkgutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = "xgpu"
#: the layers' top packages; the plugin packages live in their own folders (installed as xgpu.kernels...)
TOP_PACKAGES = ("xgpu", "xgpu.kernels", "xgpu.backends", "xgpu.tools")
PLUGIN_PACKAGES = ("xgpu.kernels", "xgpu.backends")
#: public modules a plugin package may import (besides the root facade)
PLUGIN_API = ("xgpu.plugin",)


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def is_tool(module: str) -> bool:
    return _within(module, "xgpu.tools")


def is_plugin(module: str) -> bool:
    return any(_within(module, p) for p in PLUGIN_PACKAGES)


def is_library(module: str) -> bool:
    return _within(module, ROOT) and not is_tool(module) and not is_plugin(module)


def is_private(module: str) -> bool:
    return module.split(".")[1].startswith("_") if module.count(".") >= 1 else False


def installed_modules() -> dict[str, tuple[Path, bool]]:
    """Every module of the installed package: name -> (source file, is a package), found without
    importing any of them (``find_spec`` of a subpackage imports only its parents)."""
    found: dict[str, tuple[Path, bool]] = {}

    def walk(name: str) -> None:
        spec = importlib.util.find_spec(name)
        assert spec is not None and spec.origin, f"{name} is not installed"
        locations = spec.submodule_search_locations
        found[name] = (Path(spec.origin), locations is not None)
        if locations is not None:
            for info in pkgutil.iter_modules(list(locations)):
                walk(f"{name}.{info.name}")

    for top in TOP_PACKAGES:
        if top not in found:
            walk(top)
    return found


def imports_of(name: str, path: Path, is_package: bool, known: set[str]) -> set[str]:
    """The xgpu modules that ``name`` imports, anywhere in its source."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = name if is_package else name.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                base_parts = base_parts[: len(base_parts) - (node.level - 1)]
                base = ".".join(base_parts + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in known else base)  # `from pkg import submodule` or a name
    return {t for t in targets if t in known and t != name}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = installed_modules()
    known = set(modules)
    return {name: imports_of(name, path, is_pkg, known) for name, (path, is_pkg) in modules.items()}


def test_every_layer_is_found(graph):
    for name in ("xgpu._devices", "xgpu.plugin", "xgpu.tools.cli", "xgpu.kernels.gemm.tuning",
                 "xgpu.backends.opencl", "xgpu.rules"):
        assert name in graph


def test_library_never_imports_the_tools(graph):
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if is_library(m) for t in ts if is_tool(t))
    assert not bad, "the library imports the tools:\n" + "\n".join(bad)


def test_plugins_never_import_private_core_modules(graph):
    bad = sorted(f"{m} -> {t}" for m, ts in graph.items() if is_plugin(m) for t in ts
                 if is_library(t) and is_private(t))
    assert not bad, "kernels/backends import private core modules (use xgpu.plugin):\n" + "\n".join(bad)


def cycle_edges(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {m: {t for t in ts if t != ROOT and not (is_plugin(m) and t in PLUGIN_API)} for m, ts in graph.items()}


def find_cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles(graph):
    edges = cycle_edges(graph)
    cycles = find_cycles(edges)
    report = []
    for component in cycles:
        members = set(component)
        report.append("  " + ", ".join(component) + "\n    " + "\n    ".join(
            f"{m} -> {t}" for m in component for t in sorted(edges[m]) if t in members))
    assert not cycles, "import cycles:\n" + "\n".join(report)


def test_cycle_finder_finds_a_planted_cycle():
    edges = {"xgpu._a": {"xgpu._b"}, "xgpu._b": {"xgpu._c"}, "xgpu._c": {"xgpu._a"}, "xgpu._d": {"xgpu._a"}}
    assert find_cycles(edges) == [["xgpu._a", "xgpu._b", "xgpu._c"]]
    # an edge into the root facade closes no cycle
    assert find_cycles(cycle_edges({"xgpu._a": {"xgpu"}, "xgpu": {"xgpu._a"}})) == []


def test_relative_and_lazy_imports_are_counted(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(textwrap.dedent(
        """
        from typing import TYPE_CHECKING
        from . import _b
        if TYPE_CHECKING:
            from .tools import cli
        def f():
            from ..xgpu import _c
            import xgpu.tools.bench
        """
    ))
    known = {"xgpu", "xgpu._a", "xgpu._b", "xgpu._c", "xgpu.tools", "xgpu.tools.cli", "xgpu.tools.bench"}
    assert imports_of("xgpu._a", src, False, known) == {"xgpu._b", "xgpu._c", "xgpu.tools.cli", "xgpu.tools.bench"}


FRESH = textwrap.dedent(
    """
    import sys
    import numpy as np
    import xgpu

    loaded = sorted(m for m in sys.modules if m.startswith("xgpu.tools"))
    assert not loaded, f"import xgpu loaded tools: {loaded}"
    dev = xgpu.get_device("oclgrind")  # compiles fast; these sizes are small enough for a simulator
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((7, 127)), rng.standard_normal((127, 5))
    x = xgpu.asarray(a.astype(np.float32), dev)
    y = xgpu.asarray(b.astype(np.float32), dev)
    ref = a @ b
    for got in ((x @ y).get(), xgpu.gemm(x, y).get(), xgpu.matmul(x, y).get()):
        assert np.allclose(got, ref, rtol=1e-4, atol=1e-4), np.abs(got - ref).max()
    img, w = rng.standard_normal((1, 3, 9, 7)), rng.standard_normal((4, 3, 3, 3))
    out = xgpu.conv2d(xgpu.asarray(img.astype(np.float32), dev), xgpu.asarray(w.astype(np.float32), dev),
                      padding=1).get()
    ref = np.zeros((1, 4, 9, 7))
    padded = np.pad(img, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for i in range(9):
        for j in range(7):
            ref[0, :, i, j] = np.tensordot(w, padded[0, :, i:i + 3, j:j + 3], axes=([1, 2, 3], [0, 1, 2]))
    assert np.allclose(out, ref, rtol=1e-4, atol=1e-4), np.abs(out - ref).max()
    loaded = sorted(m for m in sys.modules if m.startswith("xgpu.tools"))
    assert not loaded, f"running the kernels loaded tools: {loaded}"
    print("ok")
    """
)


def test_import_xgpu_loads_no_tool_and_the_ops_work_at_once():
    if not any(d.platform == "Oclgrind" for d in __import__("xgpu").devices()):
        pytest.skip("Oclgrind is not installed here")
    proc = subprocess.run([sys.executable, "-c", FRESH], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
