"""Everything a plugin author uses, in one module: the hook marker, the registries the hooks are
handed, the backend contract, and the few helpers the built-in kernels and backends need.

``kernels/`` and ``backends/`` import from here (and from the public ``xgpu`` namespace), never from
a private ``xgpu._*`` module. See docs/plugins.md for a complete minimal backend.
"""

from __future__ import annotations

from ._array import plain_operand, same_device, write_through
from ._cache import enabled as disk_cache_enabled
from ._cache import unsafe_reason as unsafe_folder_reason
from ._paths import cache_dir
from ._plugins import PluginWarning
from .backend import (
    LOCAL_ALIGN,
    AdoptedArray,
    Backend,
    BufferImpl,
    DeviceImpl,
    DeviceInfo,
    Diagnostic,
    EventImpl,
    KernelImpl,
    LocalMemory,
    OfflineBuild,
    ProgramImpl,
    QueueImpl,
)
from .hookspecs import (
    BackendRegistry,
    CaseRegistry,
    ParityCase,
    Peer,
    PeerRegistry,
    Target,
    TargetRegistry,
    TunableRegistry,
    hookimpl,
)
from .rules import DeviceClass, device_class, match_rule, rule_for
from .template import REQUIRED_WORDS

__all__ = [
    "AdoptedArray",
    "REQUIRED_WORDS",
    "Backend",
    "BackendRegistry",
    "BufferImpl",
    "CaseRegistry",
    "DeviceClass",
    "DeviceImpl",
    "DeviceInfo",
    "Diagnostic",
    "EventImpl",
    "KernelImpl",
    "LOCAL_ALIGN",
    "LocalMemory",
    "OfflineBuild",
    "ParityCase",
    "PluginWarning",
    "Peer",
    "PeerRegistry",
    "ProgramImpl",
    "QueueImpl",
    "Target",
    "TargetRegistry",
    "TunableRegistry",
    "cache_dir",
    "device_class",
    "disk_cache_enabled",
    "hookimpl",
    "match_rule",
    "plain_operand",
    "rule_for",
    "same_device",
    "write_through",
    "unsafe_folder_reason",
]
