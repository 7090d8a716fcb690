"""The hooks a plugin can implement, and the registries they are handed. Decorate implementations
with ``@xgpu.plugin.hookimpl``.

A plugin is a module or object exposed through an entry point in the ``xgpu`` group::

    [project.entry-points.xgpu]
    mybackend = "mypackage.xgpu_backend"

The built-in OpenCL and CUDA backends and the kernel library are loaded exactly this way. Every hook
is called once per plugin, through pluggy; a plugin whose hook raises (or that fails to import, or that
registers something invalid) is reported broken by ``xgpu plugins`` and left out, and every other
plugin keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pluggy

from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .backend import Backend

__all__ = [
    "BackendRegistry", "CaseRegistry", "ParityCase", "Peer", "PeerRegistry", "Target", "TargetRegistry",
    "TunableRegistry", "hookimpl", "hookspec",
]

hookspec = pluggy.HookspecMarker("xgpu")
hookimpl = pluggy.HookimplMarker("xgpu")

DISABLE_ENV = "XGPU_DISABLE_PLUGINS"


class _Registry:
    """What every registry shares: the name of the plugin whose hook is running (for messages)."""

    def __init__(self) -> None:
        self.current_plugin = "?"


class BackendRegistry(_Registry):
    """Passed to ``xgpu_register_backends``: ``register.add_backend(backend)``."""

    def __init__(self) -> None:
        super().__init__()
        self.backends: dict[str, Backend] = {}
        self.owners: dict[str, str] = {}

    def add_backend(self, backend: Backend) -> None:
        from .backend import Backend
        from .template import REQUIRED_WORDS

        if not isinstance(backend, Backend):
            raise InvalidArgumentError(
                f"plugin {self.current_plugin!r} registered {backend!r}, which is not an xgpu.backend.Backend"
            )
        name = backend.name
        if not isinstance(name, str) or not name or ":" in name or "," in name:
            raise InvalidArgumentError(f"backend name {name!r} must be a non-empty string without ':' or ','")
        if name in self.backends:
            raise InvalidArgumentError(
                f"two plugins register a backend named {name!r}: {self.owners[name]!r} and "
                f"{self.current_plugin!r}; disable one with {DISABLE_ENV}={self.current_plugin}"
            )
        prelude = backend.prelude()
        missing = [w for w in REQUIRED_WORDS if w not in prelude]
        if missing:
            raise InvalidArgumentError(
                f"backend {name!r}'s prelude does not define the neutral word(s) {', '.join(missing)}; "
                "every word of xgpu.REQUIRED_WORDS must be defined there"
            )
        self.backends[name] = backend
        self.owners[name] = self.current_plugin


@dataclass(frozen=True)
class ParityCase:
    """One row of the parity matrix: ``run(device, rng)`` returns ``(result, float64 reference, terms)``,
    where ``terms`` is how many products each element sums (it scales the tolerance)."""

    kernel: str
    case: str
    dtype: str
    run: Callable[[Any, np.random.Generator], tuple[np.ndarray, np.ndarray, int]]
    work: int = 0  # floating-point operations, to keep large cases off simulators
    quick: bool = True  # part of ``--quick``
    plugin: str = ""

    @property
    def key(self) -> str:
        return f"{self.kernel} | {self.case} | {self.dtype}"


class CaseRegistry(_Registry):
    """Passed to ``xgpu_register_parity_cases``: ``register.add(kernel, case, dtype, run, work=, quick=)``."""

    def __init__(self) -> None:
        super().__init__()
        self.cases: list[ParityCase] = []

    def add(self, kernel: str, case: str, dtype: str, run: Callable, *, work: int = 0, quick: bool = True) -> None:
        if not callable(run):
            raise InvalidArgumentError(f"parity case {kernel} | {case}: run must be callable, not {run!r}")
        dtype = np.dtype(dtype).name
        if any(c.kernel == kernel and c.case == case and c.dtype == dtype for c in self.cases):
            raise InvalidArgumentError(f"parity case {kernel} | {case} | {dtype} is registered twice")
        self.cases.append(ParityCase(kernel, case, dtype, run, work, quick, self.current_plugin))


@dataclass(frozen=True)
class Peer:
    """A library that ``xgpu bench gemm`` measures beside xgpu on the devices of ``backend``.

    It runs in a child process of its own: ``python -m MODULE NAME PLATFORM DEVICE N DTYPE``, which
    prints ``RESULT {"seconds": ..., "err": ...}`` or ``RESULT {"error": "why it cannot run"}``."""

    name: str
    backend: str
    module: str
    kernel: str = "gemm"


class PeerRegistry(_Registry):
    """Passed to ``xgpu_register_bench_peers``: ``register.add(name, backend=, module=, kernel="gemm")``."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[Peer] = []

    def add(self, name: str, *, backend: str, module: str, kernel: str = "gemm") -> None:
        if any(p.name == name and p.backend == backend and p.kernel == kernel for p in self.peers):
            raise InvalidArgumentError(f"benchmark peer {name!r} for {backend} {kernel} is registered twice")
        self.peers.append(Peer(name, backend, module, kernel))

    def for_backend(self, backend: str, kernel: str = "gemm") -> list[Peer]:
        return [p for p in self.peers if p.backend == backend and p.kernel == kernel]


class TunableRegistry(_Registry):
    """Passed to ``xgpu_register_tunables``: ``register.add(kernel, factory)``, where
    ``factory(device, dtype, size)`` returns the kernel's search space (an ``xgpu.tools.tune.Tunable``);
    ``size`` is the ``--size`` given to ``xgpu tune`` or None."""

    def __init__(self) -> None:
        super().__init__()
        self.factories: dict[str, Callable[[Any, str, int | None], Any]] = {}

    def add(self, kernel: str, factory: Callable[[Any, str, int | None], Any]) -> None:
        if kernel in self.factories:
            raise InvalidArgumentError(f"a tunable named {kernel!r} is registered twice")
        self.factories[kernel] = factory


@dataclass(frozen=True)
class Target:
    """An offline compile target: ``name`` is ``vendor:arch`` (``nvidia:sm_90``, ``amd:gfx90a``)."""

    name: str
    backend: str
    toolchain: str
    available: bool = True
    reason: str = ""
    default: bool = False

    @property
    def arch(self) -> str:
        return self.name.split(":", 1)[1]


class TargetRegistry(_Registry):
    """Passed to ``xgpu_register_targets``: ``register.add(name, backend=, toolchain=, available=, reason=,
    default=)``; one target of a backend may be its ``default``."""

    def __init__(self) -> None:
        super().__init__()
        self.targets: dict[str, Target] = {}

    def add(self, name: str, *, backend: str, toolchain: str, available: bool = True, reason: str = "",
            default: bool = False) -> None:
        if name.count(":") != 1 or not all(name.split(":")):
            raise InvalidArgumentError(f"target name {name!r} must read vendor:arch, such as nvidia:sm_90")
        if name in self.targets:
            raise InvalidArgumentError(f"offline target {name!r} is registered twice")
        self.targets[name] = Target(name, backend, toolchain, available, reason, default)


@hookspec
def xgpu_register_backends(register: BackendRegistry) -> None:
    """Register backends with ``register.add_backend(backend)``.

    :param register: the registry; ``add_backend`` takes an :class:`xgpu.backend.Backend`.
        Registering must be cheap and must not fail when the driver is missing: do the driver
        work in ``Backend.devices()``, which reports the backend unavailable with a reason.
    """


@hookspec
def xgpu_register_parity_cases(register: CaseRegistry) -> None:
    """Add cases to the parity matrix (``xgpu parity``) with ``register.add(kernel, case, dtype, run)``.

    :param register: the registry; ``run(device, rng)`` returns ``(result, reference, terms)``: the
        device's result as a numpy array, a float64 reference, and how many products each element
        sums (the tolerance grows with it). Give ``work=`` (FLOPs) so simulators skip large cases,
        and ``quick=False`` for cases that only the full grid runs.
    """


@hookspec
def xgpu_register_bench_peers(register: PeerRegistry) -> None:
    """Add libraries that ``xgpu bench gemm`` measures beside xgpu: ``register.add(name, backend=, module=)``."""


@hookspec
def xgpu_register_tunables(register: TunableRegistry) -> None:
    """Add kernels that ``xgpu tune KERNEL`` can search: ``register.add(kernel, factory)``."""


@hookspec
def xgpu_register_targets(register: TargetRegistry) -> None:
    """Add offline compile targets (``xgpu targets``, ``xgpu compile --target``): ``register.add(name, ...)``."""
