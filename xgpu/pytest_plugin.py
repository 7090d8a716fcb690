"""The device matrix as a pytest plugin, active wherever xgpu is installed.

A test that takes the ``xgpu_device`` argument runs once per selected device; the test id is
the device id. Select with ``--xgpu-device SPEC`` (repeatable), ``--xgpu-backend NAME``,
``--xgpu-exclude SPEC`` or ``XGPU_TEST_DEVICES=spec,spec``; by default every device of every
available backend takes part, simulators included.
"""

from __future__ import annotations

import os

import pytest

TEST_DEVICES_ENV = "XGPU_TEST_DEVICES"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("xgpu", "xgpu device matrix")
    group.addoption("--xgpu-device", action="append", default=[], metavar="SPEC",
                    help="run device tests on the devices this spec names (repeatable; id, backend or name part)")
    group.addoption("--xgpu-backend", action="append", default=[], metavar="NAME",
                    help="only devices of this backend (repeatable)")
    group.addoption("--xgpu-exclude", action="append", default=[], metavar="SPEC",
                    help="leave out the devices this spec names (repeatable)")


def selected_devices(config: pytest.Config) -> list:
    cached = getattr(config, "_xgpu_devices", None)
    if cached is not None:
        return cached
    import xgpu
    from xgpu._devices import match_devices

    specs = list(config.getoption("xgpu_device"))
    env = os.environ.get(TEST_DEVICES_ENV, "")
    specs += [s for s in env.split(",") if s.strip()]
    chosen = [d for spec in specs for d in match_devices(spec)] if specs else xgpu.devices()
    backends = config.getoption("xgpu_backend")
    if backends:
        chosen = [d for d in chosen if d.backend in backends]
    for spec in config.getoption("xgpu_exclude"):
        gone = {d.id for d in match_devices(spec)}
        chosen = [d for d in chosen if d.id not in gone]
    unique = list({d.id: d for d in chosen}.values())
    config._xgpu_devices = unique
    return unique


def pytest_report_header(config: pytest.Config) -> list[str]:
    try:
        devs = selected_devices(config)
    except Exception as exc:  # the header must never break a test run
        return [f"xgpu devices: could not list ({exc})"]
    lines = [f"xgpu devices ({len(devs)}):"]
    lines += [f"  {d.id}: {d.name} ({d.platform}, {d.type}{', simulator' if d.is_simulator else ''})" for d in devs]
    return lines


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "xgpu_device" in metafunc.fixturenames:
        devs = selected_devices(metafunc.config)
        metafunc.parametrize("xgpu_device", devs, ids=[d.id for d in devs])
