"""The device matrix as a pytest plugin, active wherever xgpu is installed.

A test that takes the ``xgpu_device`` argument runs once per selected device; the test id is
the device id. Select with ``--xgpu-device SPEC`` (repeatable), ``--xgpu-backend NAME``,
``--xgpu-exclude SPEC`` or ``XGPU_TEST_DEVICES=spec,spec``; by default every device of every
available backend takes part, simulators included. A spec that names no device, an unknown or
unavailable backend, or an empty selection is a usage error in a session that uses ``xgpu_device``
(``--xgpu-allow-empty`` lets an empty matrix through); sessions that do not are left alone.

A test that takes ``xgpu_target`` runs once per offline compile target (an
:class:`xgpu.plugin.Target`; compile with ``xgpu.compile_offline(t, target=xgpu_target.name)``), so a
kernel's tests compile it for every vendor's GPU with no GPU present: by default one available target
per vendor, or those ``--xgpu-target SPEC`` names (``amd:gfx90a``, ``sm_90``, ``intel``, ``all``).

A test that takes ``xgpu_dtype`` also runs once per dtype (float16, float32, float64, or those
``--xgpu-dtype`` names, bfloat16 among them) and is skipped, with the reason, on a device without it. ``xgpu_array``
makes arrays on the test's device: ``xgpu_array(host)``, ``xgpu_array.random(shape)``,
``xgpu_array.poisoned(shape)``.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

TEST_DEVICES_ENV = "XGPU_TEST_DEVICES"
DEFAULT_DTYPES = ("float16", "float32", "float64")
_TARGETS = pytest.StashKey[list]()
_DEVICES = pytest.StashKey[tuple[list, list[str]]]()  # the selection and its problems, once per session


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xgpu", "xgpu device matrix")
    group.addoption("--xgpu-device", action="append", default=[], metavar="SPEC",
                    help="run device tests on the devices this spec names (repeatable; id, backend or name part)")
    group.addoption("--xgpu-backend", action="append", default=[], metavar="NAME",
                    help="only devices of this backend (repeatable)")
    group.addoption("--xgpu-exclude", action="append", default=[], metavar="SPEC",
                    help="leave out the devices this spec names (repeatable)")
    group.addoption("--xgpu-allow-empty", action="store_true", default=False,
                    help="let device tests run on an empty selection (by default that is a usage error)")
    group.addoption("--xgpu-target", action="append", default=[], metavar="SPEC",
                    help="offline targets for tests taking xgpu_target (repeatable: vendor:arch, a bare arch, a "
                         "vendor such as amd, or all; default: one available target per vendor)")
    group.addoption("--xgpu-dtype", action="append", default=[], metavar="DTYPE",
                    help="dtypes for tests taking xgpu_dtype (repeatable; default: float16 float32 float64; "
                         "bfloat16 too)")


def _selection(config: pytest.Config) -> tuple[list, list[str]]:
    """The selected devices, and what in the selection named nothing (worked out once per session)."""
    cached = config.stash.get(_DEVICES, None)
    if cached is not None:
        return cached
    from xgpu._devices import list_backends, match_devices, select_devices

    sourced = [("--xgpu-device", s) for s in config.getoption("xgpu_device")]
    sourced += [(TEST_DEVICES_ENV, s) for s in os.environ.get(TEST_DEVICES_ENV, "").split(",") if s.strip()]
    backends = list(config.getoption("xgpu_backend"))
    problems = [f"{source} {spec!r} names no device" for source, spec in sourced if not match_devices(spec)]
    problems += [f"--xgpu-exclude {spec!r} names no device" for spec in config.getoption("xgpu_exclude")
                 if not match_devices(spec)]
    status = list_backends()
    for name in backends:
        if name not in status:
            problems.append(f"--xgpu-backend {name!r} is not a registered backend ({', '.join(sorted(status))})")
        elif not status[name].available:
            problems.append(f"--xgpu-backend {name!r} is unavailable: {status[name].reason}")
    unique = select_devices([spec for _, spec in sourced], backends, config.getoption("xgpu_exclude"))
    config.stash[_DEVICES] = (unique, problems)
    return unique, problems


def selected_devices(config: pytest.Config) -> list:
    """The devices tests taking ``xgpu_device`` run on."""
    return _selection(config)[0]


def _check_selection(config: pytest.Config) -> list:
    """The selection, or a usage error when a spec names nothing or nothing is selected (a run that
    tests nothing must not pass); ``--xgpu-allow-empty`` lets an empty matrix through."""
    from xgpu._devices import _listing

    devs, problems = _selection(config)
    if not devs and not problems and not config.getoption("xgpu_allow_empty"):
        problems = ["the selection holds no device"]
    if problems:
        raise pytest.UsageError(
            "xgpu device matrix: " + "; ".join(problems) + _listing()
            + "\nSelect by id, backend or a part of the name (`xgpu devices`), or pass --xgpu-allow-empty"
            " to run device tests on no device."
        )
    return devs


def pytest_report_header(config: pytest.Config) -> list[str]:
    try:
        devs, problems = _selection(config)
        from xgpu._devices import list_backends

        unavailable = [f"  {s.name}: no devices ({s.reason})" for s in list_backends().values() if not s.available]
    except Exception as exc:  # the header must never break a test run
        return [f"xgpu devices: could not list ({exc})"]
    lines = [f"xgpu devices ({len(devs)}):"]
    lines += [f"  {d.id}: {d.name} ({d.platform}, {d.type}{', simulator' if d.is_simulator else ''})" for d in devs]
    return lines + unavailable + [f"  selection problem: {p}" for p in problems]


def selected_targets(config: pytest.Config) -> list:
    """The offline targets tests taking ``xgpu_target`` compile for: those ``--xgpu-target`` names, or by
    default each backend's default target and the first available target of every other vendor."""
    cached = config.stash.get(_TARGETS, None)
    if cached is not None:
        return cached
    from xgpu._program import offline_targets

    targets = offline_targets()
    specs = list(config.getoption("xgpu_target"))
    chosen: dict[str, Any] = {}
    if not specs:
        for t in sorted(targets.values(), key=lambda t: (not t.default, t.name)):
            vendor = t.name.split(":")[0]
            if t.available and vendor not in {n.split(":")[0] for n in chosen}:
                chosen[t.name] = t
    for spec in specs:
        s = spec.strip().lower()
        found = [t for t in targets.values() if s == "all" or t.name == s or t.arch == s or t.name.split(":")[0] == s]
        if s == "all":
            found = [t for t in found if t.available]
        if not found:
            known = ", ".join(sorted({t.name.split(":")[0] for t in targets.values()})) or "none"
            raise pytest.UsageError(f"--xgpu-target {spec!r} names no offline target (vendors: {known}; "
                                    "`xgpu targets` lists them all)")
        missing = [f"{t.name}: {t.reason}" for t in found if not t.available and s != "all"]
        if missing:
            raise pytest.UsageError("--xgpu-target names unavailable targets: " + "; ".join(missing))
        chosen.update((t.name, t) for t in found)
    result = sorted(chosen.values(), key=lambda t: t.name)
    config.stash[_TARGETS] = result
    return result


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "xgpu_target" in metafunc.fixturenames:
        targets = selected_targets(metafunc.config)
        if not targets and not metafunc.config.getoption("xgpu_allow_empty"):
            raise pytest.UsageError("xgpu offline targets: none is available here (`xgpu targets` says why); "
                                    "install a toolchain or pass --xgpu-allow-empty")
        metafunc.parametrize("xgpu_target", targets, ids=[t.name for t in targets])
    if "xgpu_device" in metafunc.fixturenames:
        devs = _check_selection(metafunc.config)
        metafunc.parametrize("xgpu_device", devs, ids=[d.id for d in devs])
    if "xgpu_dtype" in metafunc.fixturenames:
        names = metafunc.config.getoption("xgpu_dtype") or DEFAULT_DTYPES
        import ml_dtypes  # noqa: F401  (gives numpy the name "bfloat16")

        try:
            dtypes = [np.dtype(n) for n in names]
        except TypeError as exc:
            raise pytest.UsageError(f"--xgpu-dtype: {exc}") from None
        metafunc.parametrize("xgpu_dtype", dtypes, ids=[d.name for d in dtypes], indirect=True)


@pytest.fixture
def xgpu_dtype(request: pytest.FixtureRequest) -> np.dtype:
    """One dtype of the matrix; skips (saying why) on a device that cannot use it."""
    dtype = request.param
    if "xgpu_device" in request.fixturenames:
        device = request.getfixturevalue("xgpu_device")
        if not device.supports(dtype):
            pytest.skip(f"{dtype.name} is not supported on {device.id} ({device.name})")
    return dtype


class ArrayFactory:
    """Arrays on one device, for parity tests: ``make(host)``, ``make.random(shape, dtype)`` and
    ``make.poisoned(shape, dtype)``."""

    def __init__(self, device: Any, seed: int = 0):
        self.device = device
        self.rng = np.random.default_rng(seed)

    def __call__(self, host: Any, dtype: Any = None) -> Any:
        import xgpu

        return xgpu.asarray(np.asarray(host, dtype=dtype), self.device)

    def random(self, shape: Any, dtype: Any = np.float32, low: float = -1.0, high: float = 1.0) -> tuple[np.ndarray, Any]:
        """``(host, device)``: uniform values in [low, high), never all zero, on the host and the device."""
        host = self.rng.uniform(low, high, shape).astype(dtype)
        return host, self(host)

    def poisoned(self, shape: Any, dtype: Any = np.float32) -> Any:
        """A device array full of a value no kernel writes by accident (NaN; the maximum for integers),
        so an element the kernel forgot shows in the comparison."""
        from xgpu.testing import poison

        return self(np.full(shape, poison(dtype), dtype=dtype))


@pytest.fixture
def xgpu_array(xgpu_device: Any) -> ArrayFactory:
    """Make arrays on the test's device (seeded: the same values on every device)."""
    return ArrayFactory(xgpu_device)
