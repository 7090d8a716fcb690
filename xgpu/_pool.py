"""A per-device pool of freed device buffers, reused by later allocations of the same size.

Allocating fresh device memory costs its first touch: 2 ms for 6.4 MB on Intel's CPU runtime and
3.5 ms on PoCL, as much as a whole convolution's transposes. Operations that allocate their outputs
and scratch on every call (gemm, conv2d) get the same sizes back instead. Reuse is safe because a
backend runs a device's work in submission order (one in-order queue or stream): work queued on a
reused buffer runs after the work queued on it before.

``XGPU_POOL=0`` turns it off; ``XGPU_POOL_MAX_BYTES`` caps what it keeps (default: a quarter of
the device's memory, at most 4 GiB); an allocation that runs out of memory empties the pool and
tries again.

With several queues on a device (``device.queue()``), submission order holds within each queue only.
Every command records its event on the blocks it touches (``Block.uses``: the last event of each
queue); a block handed out again carries those events (``Block.pending``), and the first commands on
it from another queue wait for them on the device (xgpu._queue.ordered). Freeing never waits.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from ._paths import env_bytes, env_flag
from .errors import OutOfMemoryError

if TYPE_CHECKING:
    from .backend import BufferImpl, DeviceImpl, EventImpl


class Block:
    """Owns one device buffer; gives it back to its pool when no array uses it any more (a block without a
    pool, over another library's memory, never goes to one)."""

    __slots__ = ("impl", "pending", "pool", "uses")

    def __init__(self, impl: BufferImpl, pool: MemoryPool | None,
                 pending: list[tuple[Any, EventImpl]] | None = None):
        self.impl = impl
        self.pool = pool
        #: the last event of each queue (QueueImpl, None: the default one) that used this block
        self.uses: dict[Any, EventImpl] = {}
        #: what queues did with the block before it was freed and handed out again: (queue, event)
        self.pending: list[tuple[Any, EventImpl]] = pending or []

    def __del__(self):
        pool, self.pool = self.pool, None
        if pool is not None:
            last = dict(self.pending)  # one event per queue: the latest (uses come after pending)
            last.update(self.uses)
            pool.give_back(self.impl, list(last.items()))


def _usable(buf: BufferImpl, uses: list[tuple[Any, EventImpl]] | None) -> bool:
    """Whether a pooled buffer and the events of its last uses still hold what they wrap. The garbage
    collector finalizes a reference cycle's objects in any order, before or after the block's finalizer
    pools them: a backend's finalizer may have freed either (BufferImpl.usable), so the pool checks both
    when it takes a buffer in and when it hands one out, and drops such a buffer."""
    return buf.usable() and all(event.usable() for _, event in uses or ())


class MemoryPool:
    def __init__(self, device: DeviceImpl, global_mem_bytes: int):
        self._device = device
        self._free: OrderedDict[int, BufferImpl] = OrderedDict()  # id -> buffer, oldest first
        self._uses: dict[int, list[tuple[Any, EventImpl]]] = {}  # id -> what queues last did with it
        self._by_size: dict[int, list[int]] = {}
        self._held = 0
        self._lock = threading.Lock()
        default = min(global_mem_bytes // 4, 4 * 2**30)
        # checked where read: a bad value warns once and the default is used (never a lost backend)
        self.enabled = env_flag("XGPU_POOL")
        self.limit = env_bytes("XGPU_POOL_MAX_BYTES", default)

    @property
    def held_bytes(self) -> int:
        return self._held

    def allocate(self, nbytes: int) -> Block:
        dropped = []  # let go of after the lock: a backend's finalizer may take its device's lock
        if self.enabled:
            with self._lock:
                ids = self._by_size.get(nbytes)
                while ids:
                    key = ids.pop()
                    buf = self._free.pop(key)
                    self._held -= buf.nbytes
                    uses = self._uses.pop(key, None)
                    if _usable(buf, uses):
                        return Block(buf, self, uses)
                    dropped.append(buf)
        dropped.clear()
        try:
            buf = self._device.allocate(nbytes)
        except OutOfMemoryError:
            if not self._held:
                raise
            self.clear()
            buf = self._device.allocate(nbytes)
        return Block(buf, self)

    def give_back(self, buf: BufferImpl, uses: list[tuple[Any, EventImpl]] | None = None) -> None:
        if not self.enabled or buf.nbytes > self.limit:
            return  # dropped: the driver frees it
        if not _usable(buf, uses):
            return
        with self._lock:
            while self._held + buf.nbytes > self.limit and self._free:
                key, old = self._free.popitem(last=False)
                self._by_size[old.nbytes].remove(key)
                self._uses.pop(key, None)
                self._held -= old.nbytes
            self._free[id(buf)] = buf
            if uses:
                self._uses[id(buf)] = uses
            self._by_size.setdefault(buf.nbytes, []).append(id(buf))
            self._held += buf.nbytes

    def clear(self) -> None:
        """Let the driver free every pooled buffer."""
        with self._lock:
            self._free.clear()
            self._by_size.clear()
            self._uses.clear()
            self._held = 0
