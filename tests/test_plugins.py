"""Backends are plugins: a third party's needs no change to xgpu."""

from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

import xgpu
from xgpu.backend import Backend, BufferImpl, DeviceImpl, DeviceInfo
from xgpu.errors import BackendUnavailableError, CompileError, InvalidArgumentError

from .conftest import run_xgpu


class HostBuffer(BufferImpl):
    def __init__(self, nbytes):
        self.nbytes = nbytes
        self.data = bytearray(nbytes)


class HostDevice(DeviceImpl):
    """A device whose memory is host memory: enough to list it and move arrays through it."""

    def __init__(self, index):
        self.info = DeviceInfo(
            local_id=str(index), name=f"Host Memory Device {index}", vendor="Test Vendor", platform="hostmem",
            type="accelerator", driver_version="1.0", compute_units=1, clock_mhz=1, global_mem_bytes=2**20,
            local_mem_bytes=2**10, max_work_group_size=1,
        )

    def allocate(self, nbytes):
        return HostBuffer(nbytes)

    def write(self, buffer, host):
        buffer.data[:] = host.tobytes()

    def read(self, buffer, host):
        host.reshape(-1).view(np.uint8)[:] = np.frombuffer(bytes(buffer.data), np.uint8)

    def copy(self, dst, src, nbytes):
        dst.data[:nbytes] = src.data[:nbytes]

    def compile(self, source, options):
        raise CompileError("no compiler", backend="hostmem", device=self.info.local_id, source=source,
                           options=options, log="hostmem has no compiler")

    def launch(self, kernel, global_size, local_size, args):
        raise NotImplementedError

    def synchronize(self):
        pass


class HostBackend(Backend):
    name = "hostmem"
    language = "opencl"

    def prelude(self):
        # a prelude must define every neutral word; this backend never compiles, so empty ones do
        return "/* hostmem */\n" + "\n".join(f"#define {w}" for w in xgpu.REQUIRED_WORDS)

    def devices(self):
        return [HostDevice(0), HostDevice(1)]


class HostPlugin:
    @xgpu.hookimpl
    def xgpu_register_backends(self, register):
        register.add_backend(HostBackend())


@pytest.fixture
def hostmem_plugin():
    name = xgpu.register_plugin(HostPlugin(), name="hostmem-plugin")
    yield name
    xgpu.unregister_plugin(name)


def test_third_party_backend_devices_are_listed(hostmem_plugin):
    ids = [d.id for d in xgpu.devices()]
    assert "hostmem:0" in ids and "hostmem:1" in ids
    assert any(i.startswith("opencl:") for i in ids)  # the built-in ones are still there
    dev = xgpu.get_device("hostmem:1")
    assert dev.name == "Host Memory Device 1" and dev.backend == "hostmem"
    assert xgpu.get_device("host memory device").backend == "hostmem"
    # arrays go through the plugin's memory functions, untouched by the core
    data = np.arange(10, dtype=np.float32)
    arr = xgpu.asarray(data, dev)
    np.testing.assert_array_equal(arr.get(), data)
    np.testing.assert_array_equal(np.asarray(arr.copy()), data)
    assert xgpu.list_backends()["hostmem"].plugin == "hostmem-plugin"


def test_unregistered_plugin_devices_are_gone(hostmem_plugin):
    xgpu.unregister_plugin(hostmem_plugin)
    assert not [d for d in xgpu.devices() if d.backend == "hostmem"]
    xgpu.register_plugin(HostPlugin(), name=hostmem_plugin)  # for the fixture's teardown


def test_failing_backend_is_unavailable_with_reason():
    class Broken(HostBackend):
        name = "broken"

        def devices(self):
            raise RuntimeError("driver exploded")

    class Missing(HostBackend):
        name = "missing"

        def devices(self):
            raise BackendUnavailableError("libmissing.so not found")

    class Plugin:
        @xgpu.hookimpl
        def xgpu_register_backends(self, register):
            register.add_backend(Broken())
            register.add_backend(Missing())

    name = xgpu.register_plugin(Plugin(), name="broken-plugin")
    try:
        status = xgpu.list_backends()
        assert not status["broken"].available and "driver exploded" in status["broken"].reason
        assert status["missing"].reason == "libmissing.so not found"
        assert xgpu.devices()  # the others still work
        with pytest.raises(BackendUnavailableError, match="libmissing"):
            xgpu.get_device("missing")
    finally:
        xgpu.unregister_plugin(name)


def test_misspelt_hook_is_refused():
    class Plugin:
        @xgpu.hookimpl
        def xgpu_register_backend(self, register):  # missing "s"
            pass

    with pytest.raises(InvalidArgumentError, match="unknown hook"):
        xgpu.register_plugin(Plugin(), name="typo")
    assert "typo" not in [row["name"] for row in xgpu._plugins.plugin_table()]


PLUGIN_MODULE = textwrap.dedent(
    '''
    import xgpu
    from xgpu.backend import Backend
    from xgpu.errors import BackendUnavailableError

    class Tpu(Backend):
        name = "tpu"
        language = "opencl"
        def prelude(self):
            return "\\n".join(f"#define {w}" for w in xgpu.REQUIRED_WORDS)
        def devices(self):
            raise BackendUnavailableError("no TPU in this machine")

    @xgpu.hookimpl
    def xgpu_register_backends(register):
        register.add_backend(Tpu())
    '''
)


@pytest.fixture
def installed_plugin(tmp_path):
    """A third-party package installed the way pip would: a module and a dist-info with an entry point."""
    (tmp_path / "xgpu_tpu_backend.py").write_text(PLUGIN_MODULE)
    info = tmp_path / "xgpu_tpu_backend-0.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: xgpu-tpu-backend\nVersion: 0.3\n")
    (info / "entry_points.txt").write_text("[xgpu]\ntpu = xgpu_tpu_backend\n")
    return {"PYTHONPATH": str(tmp_path)}


def test_entry_point_plugin_loads_like_the_builtins(installed_plugin):
    payload = json.loads(run_xgpu("devices", "--json", env=installed_plugin).stdout)
    assert payload["backends"]["tpu"] == {
        "name": "tpu", "plugin": "tpu", "language": "opencl", "available": False,
        "reason": "no TPU in this machine", "version": "", "device_ids": [],
    }
    plugins = {row["name"]: row for row in json.loads(run_xgpu("plugins", "--json", env=installed_plugin).stdout)}
    assert plugins["tpu"]["package"] == "xgpu-tpu-backend" and plugins["tpu"]["version"] == "0.3"
    assert plugins["opencl"]["hooks"] == ["xgpu_register_backends", "xgpu_register_bench_peers", "xgpu_register_targets"]
    assert all(row["status"] == "ok" for row in plugins.values())


def test_disable_plugins(installed_plugin):
    env = {**installed_plugin, "XGPU_DISABLE_PLUGINS": "tpu, cuda"}
    payload = json.loads(run_xgpu("devices", "--json", env=env).stdout)
    assert set(payload["backends"]) == {"opencl"}
    out = run_xgpu("plugins", env=env).stdout
    assert "disabled by XGPU_DISABLE_PLUGINS: cuda, tpu" in out


def test_everything_disabled_is_a_clear_error():
    proc = run_xgpu("devices", env={"XGPU_DISABLE_PLUGINS": "opencl,cuda"})
    assert "no default device" in proc.stdout
    proc = run_xgpu("compile", "x.mako", "--device", "opencl", env={"XGPU_DISABLE_PLUGINS": "opencl,cuda"},
                    check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr


def test_cuda_backend_reports_why_it_is_unavailable():
    status = xgpu.list_backends()["cuda"]
    if status.available:
        pytest.skip("a CUDA device is present")
    assert status.reason and ("pycuda" in status.reason or "driver" in status.reason or "GPU" in status.reason)


def test_library_works_after_the_device_list_is_rebuilt(hostmem_plugin):
    """Registering a plugin rebuilds the devices (new contexts): cached programs must follow."""
    import numpy as np

    before = xgpu.get_device("opencl")
    a = xgpu.asarray(np.eye(3, dtype=np.float32), before)
    xgpu.gemm(a, a)
    xgpu.unregister_plugin(hostmem_plugin)
    after = xgpu.get_device("opencl")
    assert after is not before and after.id == before.id
    b = xgpu.asarray(np.eye(3, dtype=np.float32), after)
    assert xgpu.gemm(b, b).get().tolist() == np.eye(3).tolist()
    xgpu.register_plugin(HostPlugin(), name=hostmem_plugin)  # for the fixture's teardown


# --- each way a plugin can fail, alone: reported broken with the reason, one warning, the rest working

FAILING_PLUGINS = {
    # an entry point whose module does not import (a dependency missing)
    "xgpu_fails_to_import": textwrap.dedent(
        """
        import xgpu_dependency_that_is_not_installed
        """
    ),
    # a hook that raises
    "xgpu_raising_hook": textwrap.dedent(
        """
        import xgpu

        @xgpu.hookimpl
        def xgpu_register_backends(register):
            raise RuntimeError("the driver table is corrupt")
        """
    ),
    # a prelude that lacks one neutral word
    "xgpu_wordless": textwrap.dedent(
        """
        import xgpu
        from xgpu.plugin import Backend

        class Wordless(Backend):
            name = "wordless"
            language = "opencl"
            def prelude(self):
                return "\\n".join(f"#define {w}" for w in xgpu.REQUIRED_WORDS[:-1])
            def devices(self):
                return []

        @xgpu.hookimpl
        def xgpu_register_backends(register):
            register.add_backend(Wordless())
        """
    ),
}
# two packages that register a backend under the same name: the first keeps it, the second is broken
TWIN = textwrap.dedent(
    """
    import xgpu
    from xgpu.plugin import Backend
    from xgpu.errors import BackendUnavailableError

    class Twin(Backend):
        name = "twin"
        language = "opencl"
        def prelude(self):
            return "\\n".join(f"#define {w}" for w in xgpu.REQUIRED_WORDS)
        def devices(self):
            raise BackendUnavailableError("no twin hardware here")

    @xgpu.hookimpl
    def xgpu_register_backends(register):
        register.add_backend(Twin())
    """
)
ENTRY_POINTS = {"failsimport": "xgpu_fails_to_import", "raisinghook": "xgpu_raising_hook",
                "wordless": "xgpu_wordless", "twina": "xgpu_twin_a", "twinb": "xgpu_twin_b"}


@pytest.fixture
def failing_plugins(tmp_path):
    """Five third-party packages installed the way pip would (module + dist-info with an entry point)."""
    sources = {**FAILING_PLUGINS, "xgpu_twin_a": TWIN, "xgpu_twin_b": TWIN}
    for entry, module in ENTRY_POINTS.items():
        (tmp_path / f"{module}.py").write_text(sources[module])
        info = tmp_path / f"{module}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module.replace('_', '-')}\nVersion: 1.0\n")
        (info / "entry_points.txt").write_text(f"[xgpu]\n{entry} = {module}\n")
    return {"PYTHONPATH": str(tmp_path), "COLUMNS": "400"}


def expected_reasons(broken_twin: str) -> dict[str, tuple[str, ...]]:
    return {
        "failsimport": ("failed to import", "ModuleNotFoundError", "xgpu_dependency_that_is_not_installed"),
        "raisinghook": ("xgpu_register_backends", "RuntimeError", "the driver table is corrupt"),
        "wordless": ("prelude", xgpu.REQUIRED_WORDS[-1]),
        broken_twin: ("two plugins register a backend named 'twin'",),
    }


WITH_BROKEN_PLUGINS = textwrap.dedent(
    """
    import json
    import warnings

    import numpy as np

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        import xgpu
        from xgpu.plugin import PluginWarning

        for _ in range(3):  # listing again warns no more
            devices = xgpu.devices()
            backends = xgpu.list_backends()
        data = np.arange(12, dtype=np.float32).reshape(3, 4)
        back = xgpu.asarray(data, "opencl").copy().get()
    print(json.dumps({
        "warnings": [str(w.message) for w in caught if issubclass(w.category, PluginWarning)],
        "devices": [d.id for d in devices],
        "backends": {n: [s.plugin, s.available, s.reason] for n, s in backends.items()},
        "arrays_ok": bool((back == data).all()),
    }))
    """
)


def test_each_failing_plugin_is_broken_alone(failing_plugins):
    import subprocess
    import sys

    env = {**__import__("os").environ, **failing_plugins}
    proc = subprocess.run([sys.executable, "-c", WITH_BROKEN_PLUGINS], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    owner = seen["backends"]["twin"][0]
    assert owner in ("twina", "twinb") and seen["backends"]["twin"][1:] == [False, "no twin hardware here"]
    broken_twin = "twinb" if owner == "twina" else "twina"
    reasons = expected_reasons(broken_twin)
    # one warning per broken plugin, naming it and saying why
    for name, words in reasons.items():
        mine = [w for w in seen["warnings"] if f"plugin {name!r}" in w]
        assert len(mine) == 1, (name, seen["warnings"])
        assert all(word in mine[0] for word in words), (name, mine[0])
    assert len(seen["warnings"]) == len(reasons)
    # every other backend keeps working
    assert "wordless" not in seen["backends"]
    assert seen["backends"]["opencl"][:2] == ["opencl", True]
    assert any(d.startswith("opencl:") for d in seen["devices"]) and seen["arrays_ok"]


def test_xgpu_plugins_reports_each_broken_plugin(failing_plugins):
    rows = {row["name"]: row for row in json.loads(run_xgpu("plugins", "--json", env=failing_plugins).stdout)}
    twins = [rows["twina"]["status"], rows["twinb"]["status"]]
    assert sorted(twins) == ["broken", "ok"]
    broken_twin = "twina" if rows["twina"]["status"] == "broken" else "twinb"
    for name, words in expected_reasons(broken_twin).items():
        assert rows[name]["status"] == "broken", rows[name]
        assert all(word in rows[name]["reason"] for word in words), rows[name]
        assert rows[name]["hooks"] == []
    assert rows["raisinghook"]["package"] == "xgpu-raising-hook" and rows["raisinghook"]["version"] == "1.0"
    for name in ("opencl", "cuda", "xgpu-kernels" if "xgpu-kernels" in rows else "opencl"):
        assert rows[name]["status"] == "ok"
    text = run_xgpu("plugins", env=failing_plugins).stdout
    for name, words in expected_reasons(broken_twin).items():
        line = next(line for line in text.splitlines() if f" {name} " in line)
        assert "broken:" in line and all(word in line for word in words), line
    # and the devices of the working backends are still listed
    payload = json.loads(run_xgpu("devices", "--json", env=failing_plugins).stdout)
    assert payload["backends"]["opencl"]["available"] and "wordless" not in payload["backends"]


def test_registered_plugin_whose_hook_raises_is_broken_alone():
    class Raising:
        @xgpu.hookimpl
        def xgpu_register_backends(self, register):
            register.add_backend(HostBackend())  # dropped with the rest of what it added
            raise RuntimeError("half-registered")

    name = xgpu.register_plugin(Raising(), name="raising-plugin")
    try:
        with pytest.warns(xgpu.plugin.PluginWarning, match="raising-plugin.*half-registered") as caught:
            backends = xgpu.list_backends()
        assert len(caught) == 1
        assert "hostmem" not in backends and backends["opencl"].available
        row = next(r for r in xgpu._plugins.plugin_table() if r["name"] == name)
        assert row["status"] == "broken" and "RuntimeError: half-registered" in row["reason"]
        xgpu.devices()  # no second warning (filterwarnings=error would raise it)
    finally:
        xgpu.unregister_plugin(name)
    assert name not in [r["name"] for r in xgpu._plugins.plugin_table()]


@pytest.mark.parametrize("case", ["duplicate", "prelude"])
def test_registered_plugin_with_an_invalid_backend_is_broken_alone(case):
    class Impostor(HostBackend):
        name = "opencl"  # the built-in's name: the built-in, registered first, keeps it

    class Wordless(HostBackend):
        name = "wordless"

        def prelude(self):
            return "\n".join(f"#define {w}" for w in xgpu.REQUIRED_WORDS[1:])

    backend = Impostor() if case == "duplicate" else Wordless()
    why = "two plugins register a backend named 'opencl'" if case == "duplicate" else xgpu.REQUIRED_WORDS[0]

    class Plugin:
        @xgpu.hookimpl
        def xgpu_register_backends(self, register):
            register.add_backend(backend)

    name = xgpu.register_plugin(Plugin(), name=f"{case}-plugin")
    try:
        with pytest.warns(xgpu.plugin.PluginWarning) as caught:
            backends = xgpu.list_backends()
        assert len(caught) == 1 and why in str(caught[0].message)
        assert backends["opencl"].plugin == "opencl" and backends["opencl"].available
        assert "wordless" not in backends
        assert xgpu.get_device("opencl").backend == "opencl"
        row = next(r for r in xgpu._plugins.plugin_table() if r["name"] == name)
        assert row["status"] == "broken" and why in row["reason"]
    finally:
        xgpu.unregister_plugin(name)


# --- the complete minimal backend of docs/plugins.md runs as shown

def _minimal_backend_blocks() -> tuple[str, str, str]:
    """The plugin module, the code that uses it, and the output shown, from docs/plugins.md."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    section = text.split("## A complete minimal backend", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    (lang1, module), (lang2, usage), (_, output) = blocks[:3]
    assert lang1 == lang2 == "python"
    return module, usage, output


def test_docs_minimal_backend_implements_the_whole_contract(tmp_path):
    import importlib.util
    import inspect

    from xgpu import backend as contract

    module_text, _usage, _output = _minimal_backend_blocks()
    path = tmp_path / "xgpu_hostnumpy.py"
    path.write_text(module_text)
    spec = importlib.util.spec_from_file_location("xgpu_hostnumpy_doc", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    classes = [c for c in vars(module).values() if inspect.isclass(c) and c.__module__ == module.__name__]
    for base in (contract.Backend, contract.DeviceImpl, contract.BufferImpl, contract.ProgramImpl,
                 contract.KernelImpl, contract.EventImpl):
        impls = [c for c in classes if issubclass(c, base)]
        assert impls, f"docs/plugins.md's minimal backend has no {base.__name__}"
        for name in base.__abstractmethods__:
            mine, theirs = (list(inspect.signature(getattr(c, name)).parameters) for c in (impls[0], base))
            assert mine == theirs, f"{impls[0].__name__}.{name}{mine} does not take the contract's {theirs}"


def test_docs_minimal_backend_runs_as_shown(tmp_path):
    import os
    import subprocess
    import sys

    module_text, usage, output = _minimal_backend_blocks()
    (tmp_path / "xgpu_hostnumpy.py").write_text(module_text)
    (tmp_path / "usage.py").write_text(usage)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(tmp_path / "usage.py")], capture_output=True, text=True, env=env,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == output.split()
