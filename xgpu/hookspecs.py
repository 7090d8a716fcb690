"""The hooks a plugin can implement. Decorate implementations with ``@xgpu.hookimpl``.

A plugin is a module or object exposed through an entry point in the ``xgpu`` group::

    [project.entry-points.xgpu]
    mybackend = "mypackage.xgpu_backend"

The built-in OpenCL and CUDA backends are loaded exactly this way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from ._plugins import BackendRegistry
    from .parity import CaseRegistry

hookspec = pluggy.HookspecMarker("xgpu")
hookimpl = pluggy.HookimplMarker("xgpu")


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
