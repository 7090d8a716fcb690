"""Plugin loading: entry points in the ``xgpu`` group, once per process, minus blocked names."""

from __future__ import annotations

import os
import threading
import warnings
from typing import TYPE_CHECKING

import pluggy

from . import hookspecs
from .errors import InvalidArgumentError

if TYPE_CHECKING:
    from .backend import Backend

ENTRY_POINT_GROUP = "xgpu"
DISABLE_ENV = "XGPU_DISABLE_PLUGINS"

_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None


class BackendRegistry:
    """Passed to ``xgpu_register_backends``: collects the backends that plugins add."""

    def __init__(self) -> None:
        self.backends: dict[str, Backend] = {}
        self.owners: dict[str, str] = {}
        self._current_plugin = "?"

    def add_backend(self, backend: Backend) -> None:
        from .backend import Backend

        if not isinstance(backend, Backend):
            raise InvalidArgumentError(
                f"plugin {self._current_plugin!r} registered {backend!r}, which is not an xgpu.backend.Backend"
            )
        name = backend.name
        if not name or ":" in name or "," in name:
            raise InvalidArgumentError(f"backend name {name!r} must be non-empty, without ':' or ','")
        if name in self.backends:
            raise InvalidArgumentError(
                f"two plugins register a backend named {name!r}: {self.owners[name]!r} and "
                f"{self._current_plugin!r}; disable one with {DISABLE_ENV}={self._current_plugin}"
            )
        self.backends[name] = backend
        self.owners[name] = self._current_plugin


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager, with the entry-point plugins loaded (once)."""
    global _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager("xgpu")
            pm.add_hookspecs(hookspecs)
            for name in disabled_plugins():
                pm.set_blocked(name)
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
            _drop_invalid(pm)
            _pm = pm
        return _pm


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object by hand (tests, notebooks); the device list is rebuilt."""
    from . import _devices

    pm = plugin_manager()
    try:
        registered = pm.register(plugin, name=name)
    except ValueError as exc:  # pluggy: name or object already registered
        raise InvalidArgumentError(f"plugin {name!r} is already registered: {exc}") from exc
    except pluggy.PluginValidationError as exc:
        raise InvalidArgumentError(f"plugin {name!r} is invalid: {exc}") from exc
    if registered is None:
        raise InvalidArgumentError(f"plugin {name!r} is blocked by {DISABLE_ENV}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        pm.unregister(name=registered)
        raise InvalidArgumentError(f"plugin {registered!r} implements an unknown hook: {exc}") from exc
    _devices.reset()
    return registered


def unregister_plugin(name: str) -> None:
    from . import _devices

    plugin_manager().unregister(name=name)
    _devices.reset()


class PluginWarning(UserWarning):
    """A plugin could not be used; the rest of xgpu goes on without it."""


def _drop_invalid(pm: pluggy.PluginManager) -> None:
    """Unregister plugins that implement hooks no spec declares (a misspelt ``xgpu_*`` name)."""
    for name, plugin in list(pm.list_name_plugin()):
        for caller in pm.get_hookcallers(plugin) or []:
            if caller.spec is None:
                warnings.warn(
                    f"xgpu plugin {name!r} implements {caller.name!r}, which is no xgpu hook "
                    f"(misspelt?); the plugin is not used",
                    PluginWarning,
                    stacklevel=2,
                )
                pm.unregister(name=name)
                break


def collect_backends() -> BackendRegistry:
    pm = plugin_manager()
    registry = BackendRegistry()
    for impl in reversed(pm.hook.xgpu_register_backends.get_hookimpls()):
        registry._current_plugin = impl.plugin_name
        impl.function(register=registry)
    return registry


def plugin_table() -> list[dict[str, object]]:
    """One row a loaded plugin: name, distribution and version, and the hooks it implements."""
    pm = plugin_manager()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    rows = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        rows.append(
            {
                "name": name,
                "package": dist.project_name if dist else "",
                "version": dist.version if dist else "",
                "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or []),
            }
        )
    return rows
