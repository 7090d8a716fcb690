"""Device classes: what a device *is* and what it can do, for per-device rule tables to key on.

A kernel's tuning table picks values per kind of device. Matching words against the platform, name
and vendor strings goes wrong: PoCL on an Intel Xeon reports the vendor ``GenuineIntel`` and a name
such as ``pthread-skylake-avx512-Intel(R) Xeon(R) ...``, so a rule meant for Intel's CPU runtime
("intel" in the text) caught it, and PoCL ran a variant written for another compiler. A
:class:`DeviceClass` says instead:

* ``implementation``: which OpenCL or CUDA implementation compiles for the device, from the platform's
  identity (``pocl``, ``intel-cpu-runtime``, ``intel-neo``, ``amd-rocm``, ``nvidia-opencl``,
  ``rusticl``, ``oclgrind``, ``cuda``...), or ``cpu``/``gpu``/``other`` for one not known here;
* ``type``: ``cpu``, ``gpu`` or ``accelerator``, as the device reports it;
* capabilities: ``simulator`` (every work-item is simulated, as on Oclgrind), ``vectorisation``
  (``across-work-items``: the compiler packs neighbouring work-items into SIMD lanes, as GPUs and
  Intel's CPU runtime do; ``within-work-item``: each work-item's own code is vectorised, so kernels
  should use vector types, as on PoCL; ``none``), and ``local_memory`` (local memory is on-chip
  scratchpad, not an emulation in cached global memory).

A rule table is a list of ``(type, tags, value)`` rows: the first row whose ``type`` is None or the
device's type and whose ``tags`` all belong to the device's :attr:`DeviceClass.tags` gives the value.
Tags are implementation names, types and capability words (:data:`TAGS`); :func:`rule_for` refuses a
tag that is none of them, so a misspelt row fails loudly instead of never matching.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from .errors import InvalidArgumentError

__all__ = [
    "IMPLEMENTATIONS",
    "TAGS",
    "DeviceClass",
    "Rule",
    "check_rules",
    "device_class",
    "match_rule",
    "rule_for",
]

T = TypeVar("T")

#: One row of a rule table: (device type or None for any, tags the device's class must all have, value).
Rule = tuple[str | None, tuple[str, ...], T]

#: Known implementations, with the platform names (lower case) that identify them. Order matters only
#: where one name needs the device type as well (Intel's "Intel(R) OpenCL" platform served both its CPU
#: runtime and, on Windows, its GPU driver).
IMPLEMENTATIONS: dict[str, str] = {
    "pocl": "PoCL, platform 'Portable Computing Language' (its CPU driver, and its remote/CUDA drivers)",
    "intel-cpu-runtime": "Intel's CPU runtime: platform 'Intel(R) OpenCL' (or 'Intel(R) CPU Runtime for "
    "OpenCL(TM) Applications') on a CPU, whatever the CPU's maker",
    "intel-neo": "Intel's GPU compute runtime (NEO): platform 'Intel(R) OpenCL Graphics' / "
    "'Intel(R) OpenCL HD Graphics', or 'Intel(R) OpenCL' on a GPU",
    "intel-fpga-emulator": "Intel's FPGA emulation platform",
    "amd-rocm": "AMD's GPU runtime (ROCm, or the Windows/PRO driver): platform 'AMD Accelerated Parallel "
    "Processing' on a GPU",
    "amd-app-cpu": "AMD's old APP SDK CPU runtime: platform 'AMD Accelerated Parallel Processing' on a CPU",
    "nvidia-opencl": "NVIDIA's OpenCL: platform 'NVIDIA CUDA'",
    "rusticl": "Mesa's rusticl: platform 'rusticl' (radeonsi, iris, llvmpipe...)",
    "clover": "Mesa's Clover: platform 'Clover'",
    "apple": "Apple's OpenCL: platform 'Apple'",
    "oclgrind": "Oclgrind, the OpenCL simulator: platform 'Oclgrind'",
    "cuda": "the CUDA driver API: platform 'CUDA <version>'",
    # fallbacks, by the type the device reports
    "cpu": "a CPU of an implementation not listed here",
    "gpu": "a GPU of an implementation not listed here",
    "other": "an accelerator (or anything else) of an implementation not listed here",
}

_TYPES = ("cpu", "gpu", "accelerator")
_VECTORISATION = ("across-work-items", "within-work-item", "none")
_CAPABILITY_TAGS = ("simulator", "local-memory", *(f"vectorises-{v}" for v in _VECTORISATION if v != "none"),
                    "scalar", "simd-narrow")
#: a CPU whose native float vector holds fewer lanes than this (AVX2: 8, against AVX-512's 16) has half
#: the vector register file: register blocks sized for 16 lanes spill there (``simd-narrow``)
WIDE_SIMD_LANES = 16
#: Every word a rule's tags may use.
TAGS: frozenset[str] = frozenset((*IMPLEMENTATIONS, *_TYPES, *_CAPABILITY_TAGS))

# platform name (stripped, lower case) -> implementation; None: decided by the device type below
_BY_PLATFORM: dict[str, str | None] = {
    "portable computing language": "pocl",
    "oclgrind": "oclgrind",
    "rusticl": "rusticl",
    "clover": "clover",
    "apple": "apple",
    "nvidia cuda": "nvidia-opencl",
    "intel(r) opencl graphics": "intel-neo",
    "intel(r) opencl hd graphics": "intel-neo",
    "intel(r) cpu runtime for opencl(tm) applications": "intel-cpu-runtime",
    "intel(r) fpga emulation platform for opencl(tm)": "intel-fpga-emulator",
    "intel(r) opencl": None,
    "amd accelerated parallel processing": None,
}
_BY_PLATFORM_AND_TYPE: dict[tuple[str, str], str] = {
    ("intel(r) opencl", "cpu"): "intel-cpu-runtime",
    ("intel(r) opencl", "gpu"): "intel-neo",
    ("amd accelerated parallel processing", "gpu"): "amd-rocm",
    ("amd accelerated parallel processing", "cpu"): "amd-app-cpu",
}
# platform names that start with a word (the CUDA backend's platform is "CUDA <version>")
_BY_PLATFORM_WORD: dict[str, str] = {"cuda": "cuda"}
# implementations whose compiler packs work-items into SIMD lanes even on a CPU
_ACROSS_ON_CPU = frozenset({"intel-cpu-runtime"})


@dataclass(frozen=True)
class DeviceClass:
    """What a device is (its implementation and type) and what it can do; see the module docstring."""

    implementation: str
    type: str
    simulator: bool
    vectorisation: str
    local_memory: bool
    #: the device's native float vector width (lanes) where the driver says it, else 0 (unknown)
    simd_lanes: int = 0

    @property
    def tags(self) -> frozenset[str]:
        """The words a rule's tags are matched against."""
        words = {self.implementation, self.type}
        if self.simulator:
            words.add("simulator")
        if self.local_memory:
            words.add("local-memory")
        words.add("scalar" if self.vectorisation == "none" else f"vectorises-{self.vectorisation}")
        if self.type == "cpu" and 0 < self.simd_lanes < WIDE_SIMD_LANES:
            words.add("simd-narrow")
        return frozenset(words)

    def __str__(self) -> str:
        return " ".join(sorted(self.tags, key=lambda t: (t != self.implementation, t)))


def _implementation(platform: str, device_type: str) -> str:
    key = platform.strip().lower()
    first_word = key.split(" ", 1)[0]
    if first_word in _BY_PLATFORM_WORD:
        return _BY_PLATFORM_WORD[first_word]
    if key in _BY_PLATFORM:
        found = _BY_PLATFORM[key] or _BY_PLATFORM_AND_TYPE.get((key, device_type))
        if found:
            return found
    return device_type if device_type in ("cpu", "gpu") else "other"


def device_class(device: Any) -> DeviceClass:
    """The class of ``device``: an :class:`xgpu.Device` or a :class:`~xgpu.plugin.DeviceInfo` (anything with
    ``platform``, ``type`` and ``is_simulator``)."""
    if isinstance(device, DeviceClass):
        return device
    device_type = str(device.type).lower()
    implementation = _implementation(str(device.platform), device_type)
    simulator = bool(getattr(device, "is_simulator", False)) or implementation == "oclgrind"
    if simulator:
        vectorisation = "none"
    elif device_type == "gpu" or implementation in _ACROSS_ON_CPU:
        vectorisation = "across-work-items"  # SIMT lanes, or Intel's implicit vectorisation on a CPU
    elif device_type == "cpu":
        vectorisation = "within-work-item"
    else:
        vectorisation = "none"
    # CPU runtimes keep local memory in ordinary (cached) memory; a simulator only models it
    local_memory = device_type in ("gpu", "accelerator") and not simulator
    extra = getattr(device, "extra", None) or {}
    try:
        lanes = int(extra.get("native_vector_width_float", 0))
    except (TypeError, ValueError):
        lanes = 0
    return DeviceClass(implementation, device_type, simulator, vectorisation, local_memory, lanes)


def check_rules(rules: Sequence[tuple[str | None, tuple[str, ...], Any]]) -> None:
    """Raise :class:`~xgpu.errors.InvalidArgumentError` for a row with an unknown type or tag."""
    for kind, tags, _value in rules:
        if kind is not None and kind not in _TYPES:
            raise InvalidArgumentError(f"rule type {kind!r} is none of {', '.join(_TYPES)} (or None for any)")
        unknown = [t for t in tags if t not in TAGS]
        if unknown:
            raise InvalidArgumentError(
                f"rule tag(s) {', '.join(map(repr, unknown))} name no implementation, type or capability; "
                f"known: {', '.join(sorted(TAGS))}"
            )


def match_rule(cls: DeviceClass, rules: Sequence[tuple[str | None, tuple[str, ...], T]]) -> T:
    """The value of the first row of ``rules`` that fits the device class ``cls``."""
    check_rules(rules)
    tags = cls.tags
    for kind, wanted, value in rules:
        if (kind is None or kind == cls.type) and all(t in tags for t in wanted):
            return value
    raise InvalidArgumentError(f"no rule fits a device of class {cls}: end the table with (None, (), value)")


def rule_for(device: Any, rules: Sequence[tuple[str | None, tuple[str, ...], T]]) -> T:
    """The value of the first row of ``rules`` that fits ``device`` (see :func:`device_class`)."""
    return match_rule(device_class(device), rules)
