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
    assert plugins["opencl"]["hooks"] == ["xgpu_register_backends", "xgpu_register_bench_peers"]
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
