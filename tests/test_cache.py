"""The on-disk compile cache: never stale, never corrupt, private, safe under concurrency."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import xgpu
from xgpu import _cache

from .conftest import run_xgpu

SOURCE = """
KERNEL void fill(GLOBAL_MEM float* y, const index_t n)
{
    const index_t i = GLOBAL_ID(0);
    if (i < n)
        y[i] = ${value};
}
"""


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("XGPU_CACHE_DIR", str(folder))
    monkeypatch.setenv("XGPU_CACHE", "1")
    monkeypatch.setattr(_cache, "stats", _cache.CacheStats())
    monkeypatch.setattr(_cache, "_refused", set())
    return folder


@pytest.fixture
def dev():
    d = xgpu.get_device()
    yield d


def fresh(device):
    """Forget what this process compiled, so the next compile asks the disk cache."""
    device._programs.clear()


def run_fill(device, template, value, options=()):
    fresh(device)
    program = xgpu.compile(template, device, defines={"value": value}, options=options)
    y = xgpu.zeros(5, np.float32, device)
    program.fill(y, 5, global_size=5)
    return y.get()


def test_hit_after_store_and_miss_on_changed_define(cache_dir, dev):
    assert run_fill(dev, SOURCE, "1.5f").tolist() == [1.5] * 5
    assert (_cache.stats.misses, _cache.stats.stores) == (1, 1)
    assert run_fill(dev, SOURCE, "1.5f").tolist() == [1.5] * 5
    assert _cache.stats.hits == 1
    assert run_fill(dev, SOURCE, "2.5f").tolist() == [2.5] * 5  # a changed define misses
    assert _cache.stats.misses == 2 and len(_cache.entries()) == 2


def test_changed_included_file_misses(cache_dir, dev, tmp_path):
    inc = tmp_path / "value.mako"
    main = tmp_path / "main.mako"
    main.write_text(SOURCE.replace("${value}", '<%include file="value.mako"/>'))
    inc.write_text("3.0f")
    assert run_fill(dev, xgpu.KernelTemplate(main), None).tolist() == [3.0] * 5
    inc.write_text("4.0f")
    assert run_fill(dev, xgpu.KernelTemplate(main), None).tolist() == [4.0] * 5  # not a stale binary
    assert _cache.stats.misses == 2 and _cache.stats.hits == 0


def test_changed_option_misses(cache_dir, dev):
    run_fill(dev, SOURCE, "1.0f")
    fast_math = "-cl-fast-relaxed-math" if dev.language == "opencl" else "--use_fast_math"  # options are the compiler's
    run_fill(dev, SOURCE, "1.0f", options=(fast_math,))
    assert _cache.stats.misses == 2 and _cache.stats.hits == 0


def test_changed_driver_version_misses(cache_dir, dev, monkeypatch):
    run_fill(dev, SOURCE, "1.0f")
    monkeypatch.setattr(dev, "driver_version", dev.driver_version + "-updated")
    run_fill(dev, SOURCE, "1.0f")
    assert _cache.stats.misses == 2 and _cache.stats.hits == 0


@pytest.mark.parametrize("damage,reason", [("corrupt", "checksum mismatch"), ("truncate", "truncated")])
def test_damaged_entry_is_discarded_and_rebuilt(cache_dir, dev, damage, reason):
    run_fill(dev, SOURCE, "6.0f")
    (entry,) = _cache.entries()
    data = bytearray(entry.read_bytes())
    if damage == "corrupt":
        data[-10] ^= 0xFF
    else:
        data = data[: len(data) // 2]
    entry.write_bytes(bytes(data))
    with pytest.warns(_cache.CacheWarning, match=reason):
        assert run_fill(dev, SOURCE, "6.0f").tolist() == [6.0] * 5
    assert _cache.stats.rebuilt == 1
    (rebuilt,) = _cache.entries()
    assert _cache.load(rebuilt.stem) is not None  # the new entry is whole


RACER = textwrap.dedent(
    """
    import sys, numpy as np, xgpu
    dev = xgpu.get_device()
    program = xgpu.compile(sys.argv[1], dev, defines={"value": "7.0f"})
    y = xgpu.zeros(5, np.float32, dev)
    program.fill(y, 5, global_size=5)
    assert y.get().tolist() == [7.0] * 5
    print("ok")
    """
)


def test_racing_processes_leave_one_valid_entry(cache_dir, tmp_path):
    template = tmp_path / "fill.mako"
    template.write_text(SOURCE)
    env = {**os.environ, "XGPU_CACHE_DIR": str(cache_dir)}
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(template)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(8)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1][-500:] for o in outs]
    assert all(o[0].strip() == "ok" for o in outs)
    entries = _cache.entries()
    # one binary and one compiled template module (docs/cache.md), each whole
    assert len(entries) == 2 and all(_cache.load(e.stem, counted=False) is not None for e in entries)
    assert not list(_cache.binaries_dir().glob("*.tmp"))


def test_cache_folder_is_private(cache_dir, dev):
    run_fill(dev, SOURCE, "1.0f")
    assert (_cache.binaries_dir().stat().st_mode & 0o777) == 0o700


def test_world_writable_folder_is_refused(cache_dir, dev):
    folder = _cache.binaries_dir()
    folder.mkdir(parents=True)
    os.chmod(folder, 0o777)
    with pytest.warns(_cache.CacheWarning, match="writable by others.*chmod 700"):
        assert run_fill(dev, SOURCE, "8.0f").tolist() == [8.0] * 5
    assert not _cache.entries()


def test_disabled_cache_writes_nothing(cache_dir, dev, monkeypatch):
    monkeypatch.setenv("XGPU_CACHE", "0")
    run_fill(dev, SOURCE, "1.0f")
    assert not _cache.entries() and _cache.stats.stores == 0


def test_least_recently_used_are_evicted(cache_dir, dev, monkeypatch):
    run_fill(dev, SOURCE, "1.0f")
    (first,) = _cache.entries()
    size = first.stat().st_size
    os.utime(first, (1, 1))  # long unused
    monkeypatch.setenv("XGPU_CACHE_MAX_BYTES", str(int(size * 2.5)))
    run_fill(dev, SOURCE, "2.0f")
    run_fill(dev, SOURCE, "3.0f")
    assert len(_cache.entries()) == 2 and not first.exists()


def test_cli_info_and_clear(cache_dir, dev):
    run_fill(dev, SOURCE, "1.0f")
    out = run_xgpu("cache", "info").stdout
    assert str(_cache.binaries_dir()) in out and "entries: 1" in out
    assert "removed 1 cached binaries" in run_xgpu("cache", "clear").stdout
    assert not _cache.entries()


def test_python_info_counts_this_process(cache_dir, dev):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        run_fill(dev, SOURCE, "1.0f")
        run_fill(dev, SOURCE, "1.0f")
    info = xgpu.cache_info()
    assert info["this_process"]["hits"] == 1 and info["this_process"]["misses"] == 1 and info["entries"] == 1
