"""The CUDA backend: NVRTC compiles (no GPU needed); pycuda runs kernels on NVIDIA GPUs.

Here it provides the CUDA prelude, so every template renders to CUDA C on any machine, and
offline compilation with NVRTC (``xgpu compile --backend cuda --arch sm_80``). Without pycuda
or an NVIDIA driver it lists no devices and says why.
"""

from __future__ import annotations

from pathlib import Path

import xgpu
from xgpu.backend import Backend, DeviceImpl, OfflineBuild
from xgpu.errors import BackendUnavailableError

from ._nvrtc import CudaBinary, compile_cuda, nvrtc_version, ptxas_report

__all__ = ["CudaBackend", "CudaBinary", "compile_cuda", "nvrtc_version", "ptxas_report"]

_PRELUDE_FILE = Path(__file__).with_name("prelude.mako")


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
        arch = target or "sm_80"
        binary = ptxas_report(compile_cuda(source, arch, options), arch) if arch.startswith("sm_") else (
            compile_cuda(source, arch, options)
        )
        log = "\n".join(x for x in (binary.log, binary.ptxas_log) if x)
        return OfflineBuild(arch, log, binary.cubin or binary.ptx.encode(), binary.resources)

    def devices(self) -> list[DeviceImpl]:
        try:
            import pycuda.driver as drv
        except ImportError as exc:
            if "libcuda" in str(exc):
                raise BackendUnavailableError(f"no NVIDIA driver ({exc})") from exc
            raise BackendUnavailableError(
                f"pycuda is not installed ({exc}); on a machine with an NVIDIA GPU: pip install 'xgpu[cuda]'"
            ) from exc
        try:
            drv.init()
            count = drv.Device.count()
        except Exception as exc:  # pycuda.driver.Error and friends: no usable driver or GPU
            raise BackendUnavailableError(f"no usable NVIDIA GPU: {exc}") from exc
        if not count:
            raise BackendUnavailableError("the NVIDIA driver sees no GPU")
        raise BackendUnavailableError(
            f"{count} NVIDIA GPU(s) found, but running kernels through pycuda is not implemented yet "
            "(offline compilation works: xgpu compile --backend cuda)"
        )


_backend = CudaBackend()


@xgpu.hookimpl
def xgpu_register_backends(register):
    register.add_backend(_backend)
