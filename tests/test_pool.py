"""The per-device pool of freed buffers: reuse by size, views keep buffers alive, limits, OOM retry."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import xgpu
from xgpu.errors import OutOfMemoryError


@pytest.fixture
def dev():
    d = next(d for d in xgpu.devices() if not d.is_simulator)
    d._pool.clear()
    yield d
    d._pool.clear()


def test_a_freed_buffer_is_reused_for_the_same_size(dev):
    a = xgpu.empty(1000, np.float32, dev)
    buf = a._buffer
    del a
    gc.collect()
    assert dev._pool.held_bytes == 4000
    b = xgpu.asarray(np.arange(1000, dtype=np.float32), dev)
    assert b._buffer is buf and dev._pool.held_bytes == 0
    np.testing.assert_array_equal(b.get(), np.arange(1000, dtype=np.float32))  # reused memory holds new data
    c = xgpu.empty(999, np.float32, dev)
    assert c._buffer is not buf


def test_a_view_keeps_the_buffer_out_of_the_pool(dev):
    a = xgpu.asarray(np.ones(64, np.float32), dev)
    view = a.reshape(8, 8)
    del a
    gc.collect()
    assert dev._pool.held_bytes == 0
    other = xgpu.asarray(np.zeros(64, np.float32), dev)
    assert other._buffer is not view._buffer
    np.testing.assert_array_equal(view.get(), np.ones((8, 8), np.float32))


def test_limit_and_switch(dev, monkeypatch):
    monkeypatch.setattr(dev._pool, "limit", 10_000)
    arrays = [xgpu.empty(1000, np.float32, dev) for _ in range(4)]  # 4 x 4000 bytes
    del arrays
    gc.collect()
    assert dev._pool.held_bytes == 8000  # the oldest are let go beyond the limit
    monkeypatch.setattr(dev._pool, "enabled", False)
    x = xgpu.empty(1000, np.float32, dev)
    del x
    gc.collect()
    assert dev._pool.held_bytes == 8000


def test_out_of_memory_empties_the_pool_and_tries_again(dev, monkeypatch):
    a = xgpu.empty(1000, np.float32, dev)
    del a
    gc.collect()
    assert dev._pool.held_bytes
    real = dev._impl.allocate
    calls = []

    def tight(nbytes):  # the device is full while the pool holds memory
        calls.append(nbytes)
        if dev._pool.held_bytes:
            raise OutOfMemoryError(f"{dev.id}: out of memory")
        return real(nbytes)

    monkeypatch.setattr(dev._impl, "allocate", tight)
    b = xgpu.empty(2000, np.float32, dev)
    assert b.shape == (2000,) and calls == [8000, 8000] and dev._pool.held_bytes == 0
