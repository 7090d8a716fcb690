"""The CUDA backend: NVRTC compiles (no GPU needed); pycuda runs kernels on NVIDIA GPUs.

Every template renders to CUDA C on any machine and compiles offline with NVRTC
(``xgpu compile --target nvidia:sm_80``; ``xgpu targets`` lists the architectures). With pycuda and an NVIDIA driver, devices
``cuda:0``... run kernels (``_runtime.py``); without them the backend lists no devices and says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from xgpu.errors import BackendUnavailableError
from xgpu.plugin import AdoptedArray, Backend, DeviceImpl, OfflineBuild, hookimpl

from ._nvrtc import CudaBinary, compile_cuda, nvrtc_version, ptxas_report, supported_archs

__all__ = ["CudaBackend", "CudaBinary", "compile_cuda", "nvrtc_version", "ptxas_report"]

_PRELUDE_FILE = Path(__file__).with_name("prelude.mako")
#: the offline target ``xgpu compile`` uses when none is named (A100-class)
DEFAULT_ARCH = "sm_80"
#: what is offered when NVRTC is missing (listed as unavailable, with the reason)
_KNOWN_ARCHS = (75, 80, 86, 89, 90)


class CudaBackend(Backend):
    name = "cuda"
    language = "cuda"

    def __init__(self) -> None:
        self._prelude: str | None = None

    def prelude(self) -> str:
        if self._prelude is None:
            from mako.template import Template

            self._prelude = Template(filename=str(_PRELUDE_FILE), strict_undefined=True).render()
        return self._prelude

    def version(self) -> str:
        try:
            return nvrtc_version()
        except BackendUnavailableError:
            return ""

    def compile_offline(self, source: str, target: str | None, options: tuple[str, ...]) -> OfflineBuild:
        arch = target or DEFAULT_ARCH
        binary = ptxas_report(compile_cuda(source, arch, options), arch) if arch.startswith("sm_") else (
            compile_cuda(source, arch, options)
        )
        log = "\n".join(x for x in (binary.log, binary.ptxas_log) if x)
        return OfflineBuild(arch, log, binary.cubin or binary.ptx.encode(), binary.resources)

    def devices(self) -> Sequence[DeviceImpl]:
        from ._runtime import list_devices

        return list_devices()

    def adopt_array(self, obj: Any, devices: Sequence[DeviceImpl]) -> AdoptedArray | None:
        from ._runtime import adopt_gpuarray

        return adopt_gpuarray(obj, list(devices))  # type: ignore[arg-type]  # this backend's own devices


_backend = CudaBackend()


@hookimpl
def xgpu_register_backends(register):
    register.add_backend(_backend)


@hookimpl
def xgpu_register_targets(register):
    try:
        archs, available, reason = supported_archs(), True, ""
        toolchain = nvrtc_version()
    except BackendUnavailableError as exc:
        archs, available, reason, toolchain = list(_KNOWN_ARCHS), False, str(exc), "NVRTC"
    for number in archs:
        for kind in ("sm", "compute"):
            arch = f"{kind}_{number}"
            register.add(f"nvidia:{arch}", backend="cuda", available=available, reason=reason,
                         toolchain=toolchain + (" + ptxas" if kind == "sm" else " (PTX)"),
                         default=arch == DEFAULT_ARCH)
