"""The CLI's tables fit the terminal: 80 columns stay readable (no cell cut to ``n…``), piped output
follows ``COLUMNS``, and a reader that closes the pipe early ends the command quietly."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import xgpu
from xgpu import tuning

from .conftest import run_xgpu


def piped(*args: str, columns: int | None = 80, env: dict[str, str] | None = None) -> str:
    """The command's output through a pipe (never a terminal), with COLUMNS set or unset."""
    full = {**os.environ, **(env or {})}
    full.pop("COLUMNS", None)
    if columns is not None:
        full["COLUMNS"] = str(columns)
    proc = subprocess.run([sys.executable, "-m", "xgpu.tools.cli", *args], capture_output=True, text=True,
                          env=full, stdin=subprocess.DEVNULL, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def assert_fits(out: str, columns: int) -> None:
    for line in out.splitlines():
        assert len(line.rstrip()) <= columns, f"{len(line.rstrip())} > {columns}: {line!r}"
    assert "…" not in out, out


@pytest.mark.parametrize("args", [("devices",), ("devices", "--wide"), ("devices", "--peaks"), ("plugins",), ("targets",)])
def test_tables_fit_80_columns_without_cutting_cells(args):
    out = piped(*args, columns=80)
    assert_fits(out, 80)


def test_devices_at_80_columns_shows_every_id_name_and_platform_whole():
    out = piped("devices", columns=80)
    words = out.split()
    for d in xgpu.devices():
        assert d.id in words
        # a long name or platform wraps at spaces inside its column: every word of it is there, whole
        for word in (d.name + " " + d.platform).split():
            assert word in words, (word, out)
    assert "--wide" in out  # says where the other columns are


def test_wide_has_every_column_and_json_is_unchanged():
    wide = piped("devices", "--wide", columns=200)
    for header in ("vendor / platform", "clock", "local mem", "max WG", "driver"):
        assert header in wide, header
    assert_fits(wide, 200)
    payload = json.loads(piped("devices", "--json", columns=40))
    assert [d["id"] for d in payload["devices"]] == [d.id for d in xgpu.devices()]


def test_piped_output_follows_columns():
    narrow, wide = piped("devices", "--wide", columns=100), piped("devices", "--wide", columns=180)
    assert_fits(narrow, 100)
    assert max(len(line.rstrip()) for line in wide.splitlines()) > 100  # not forced to one width
    assert_fits(piped("devices", columns=None), 80)  # no terminal, no COLUMNS: 80


def test_tune_show_fits_80_columns(tmp_path, monkeypatch):
    monkeypatch.setenv("XGPU_TUNING_DIR", str(tmp_path))
    dev = next(d for d in xgpu.devices() if not d.is_simulator)
    tuning.record("gemm", dev, "float32", "large", {"tm": 64}, label="64x32-8x2-kc256", gflops=123.4,
                  default_label="128x32-8x2-kc256", default_gflops=100.0)
    out = piped("tune", "--show", columns=80, env={"XGPU_TUNING_DIR": str(tmp_path)})
    assert_fits(out, 80)
    listed = json.loads(piped("tune", "--show", "--json", columns=80, env={"XGPU_TUNING_DIR": str(tmp_path)}))
    assert [e["label"] for e in listed["entries"]] == ["64x32-8x2-kc256"]


def test_closed_pipe_ends_quietly():
    proc = subprocess.run(f"{sys.executable} -m xgpu.tools.cli plugins --json | head -1; exit ${{PIPESTATUS[0]}}",
                          shell=True, executable="/bin/bash", capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout == "[\n" and proc.stderr == "", proc.stderr


def test_run_xgpu_helper_still_sees_tables():
    assert "default device" in run_xgpu("devices").stdout
