"""Plugin loading: entry points in the ``xgpu`` group, once per process, minus blocked names.

Each plugin fails alone: an entry point that does not import, a hook that raises, a backend name
registered twice or a prelude without a neutral word makes that plugin *broken* (listed by
``xgpu plugins`` with the reason, one :class:`PluginWarning` when it happens) and leaves it out;
every other plugin keeps working. Hooks are called through pluggy, one plugin at a time.
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, TypeVar

import pluggy

from . import hookspecs
from .errors import InvalidArgumentError
from .hookspecs import DISABLE_ENV, BackendRegistry

ENTRY_POINT_GROUP = "xgpu"

R = TypeVar("R", bound=hookspecs._Registry)

_lock = threading.RLock()
_pm: pluggy.PluginManager | None = None
#: plugin name -> why it is not used (import failure, a hook that raised, an invalid registration)
_broken: dict[str, str] = {}
#: called after a plugin is registered or unregistered by hand (the device list is rebuilt)
on_change: list[Callable[[], None]] = []


class PluginWarning(UserWarning):
    """A plugin could not be used; the rest of xgpu goes on without it."""


def disabled_plugins() -> set[str]:
    return {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}


def mark_broken(name: str, why: str) -> None:
    """Record ``name`` as broken (once: one warning per plugin) and take it out of the manager."""
    with _lock:
        if name in _broken:
            return
        _broken[name] = why
        if _pm is not None and _pm.get_plugin(name) is not None:
            _pm.unregister(name=name)
    warnings.warn(f"xgpu plugin {name!r} is not used: {why}", PluginWarning, stacklevel=3)


def broken_plugins() -> dict[str, str]:
    """Plugins that could not be used, with the reason."""
    plugin_manager()
    return dict(_broken)


def _load_entry_points(pm: pluggy.PluginManager) -> None:
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if pm.is_blocked(ep.name) or pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party package must not take xgpu down
            mark_broken(ep.name, f"its entry point {ep.value!r} failed to import: {type(exc).__name__}: {exc}")
            continue
        try:
            pm.register(plugin, name=ep.name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            mark_broken(ep.name, f"it cannot be registered: {exc}")
            continue
        dist = getattr(ep, "dist", None)
        if dist is not None:
            _dists[ep.name] = (dist.metadata["Name"] or "", dist.version or "")


_dists: dict[str, tuple[str, str]] = {}


def plugin_manager() -> pluggy.PluginManager:
    """The process's plugin manager, with the entry-point plugins loaded (once)."""
    global _pm
    with _lock:
        if _pm is None:
            pm = pluggy.PluginManager("xgpu")
            pm.add_hookspecs(hookspecs)
            for name in disabled_plugins():
                pm.set_blocked(name)
            _pm = pm
            _load_entry_points(pm)
            _drop_invalid(pm)
        return _pm


def register_plugin(plugin: object, name: str | None = None) -> str:
    """Register a plugin object by hand (tests, notebooks); the device list is rebuilt."""
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
    with _lock:
        _broken.pop(registered, None)
    for callback in on_change:
        callback()
    return registered


def unregister_plugin(name: str) -> None:
    """Take out a plugin registered by hand (or forget one that broke); the device list is rebuilt."""
    pm = plugin_manager()
    with _lock:
        was_broken = _broken.pop(name, None) is not None
    if pm.get_plugin(name) is None:
        if was_broken:
            return
        raise InvalidArgumentError(f"no plugin named {name!r} is registered")
    pm.unregister(name=name)
    for callback in on_change:
        callback()


def _drop_invalid(pm: pluggy.PluginManager) -> None:
    """Plugins that implement hooks no spec declares (a misspelt ``xgpu_*`` name) are broken."""
    for name, plugin in list(pm.list_name_plugin()):
        for caller in pm.get_hookcallers(plugin) or []:
            if caller.spec is None:
                mark_broken(name, f"it implements {caller.name!r}, which is no xgpu hook (misspelt?)")
                break


def call_each(hook_name: str, registry: R) -> R:
    """Call hook ``hook_name`` of every plugin through pluggy, one plugin at a time, handing each the
    same ``registry``; a plugin whose hook raises is marked broken and what it added is dropped."""
    pm = plugin_manager()
    caller = getattr(pm.hook, hook_name)
    for impl in caller.get_hookimpls():  # in registration order: the first to claim a name keeps it
        name = impl.plugin_name
        others = [p for n, p in pm.list_name_plugin() if n != name and p is not None]
        before = _snapshot(registry)
        registry.current_plugin = name
        try:
            pm.subset_hook_caller(hook_name, remove_plugins=others)(register=registry)
        except Exception as exc:
            _restore(registry, before)
            mark_broken(name, f"its {hook_name} hook raised {type(exc).__name__}: {exc}")
    registry.current_plugin = "?"
    return registry


def _snapshot(registry: Any) -> dict[str, Any]:
    return {k: (v.copy() if isinstance(v, (dict, list)) else v) for k, v in vars(registry).items()}


def _restore(registry: Any, state: dict[str, Any]) -> None:
    vars(registry).update(state)


def collect_backends() -> BackendRegistry:
    return call_each("xgpu_register_backends", BackendRegistry())


def plugin_table() -> list[dict[str, object]]:
    """One row a plugin: name, distribution and version, the hooks it implements, and whether it is
    ``ok`` or ``broken`` (with the reason)."""
    pm = plugin_manager()
    rows: list[dict[str, object]] = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        package, version = _dists.get(name, ("", ""))
        rows.append({"name": name, "package": package, "version": version, "status": "ok", "reason": "",
                     "hooks": sorted(h.name for h in pm.get_hookcallers(plugin) or [])})
    for name, why in sorted(_broken.items()):
        package, version = _dists.get(name, ("", ""))
        rows.append({"name": name, "package": package, "version": version, "status": "broken", "reason": why,
                     "hooks": []})
    return rows
