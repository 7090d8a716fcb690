"""Waiting for a device without losing Ctrl-C: a driver's blocking wait runs on one of xgpu's waiting
threads while the caller waits in short steps (used by ``Event.wait`` and ``Device.synchronize``). There
are as many waiting threads as waits at once, so waits on several devices never queue behind each other."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from .errors import InvalidArgumentError, KernelTimeoutError

_wait_jobs: Any = None  # the waiting threads' jobs, made on first use
_wait_lock = threading.Lock()
# waiting threads that are idle and not yet promised a job: a wait that finds none starts another thread, so
# a wait on one device never queues behind a wait on another (or behind a kernel that timed out and runs on)
_idle_waiters = 0


def _forget_waiters() -> None:
    """In a forked child: the parent's waiting threads did not come along (the fork copied only the forking
    thread), so jobs must go to threads of the child's own."""
    global _wait_jobs, _wait_lock, _idle_waiters
    _wait_jobs, _wait_lock, _idle_waiters = None, threading.Lock(), 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_waiters)


def _waiter() -> None:
    global _idle_waiters
    while True:
        wait, finished, failure = _wait_jobs.get()
        try:
            wait()
        except BaseException as exc:  # handed to the thread that asked
            failure.append(exc)
        finally:
            finished.set()
            with _wait_lock:
                _idle_waiters += 1


def wait_interruptibly(wait: Any, timeout: float | None, what: str, done: Any = None) -> None:
    """Call the blocking ``wait()`` on xgpu's waiting thread while this thread waits in short steps: Ctrl-C
    raises KeyboardInterrupt at once (a driver's wait ignores SIGINT), and ``timeout`` raises
    KernelTimeoutError. ``done()``, where a backend can tell, skips the hand-over for work already finished.
    The kernel itself cannot be cancelled: it runs to its end (and the waiting thread with it)."""
    global _wait_jobs, _idle_waiters
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0):
        raise InvalidArgumentError(f"timeout must be a number of seconds >= 0 or None, not {timeout!r}")
    if done is not None:
        spin_until = time.perf_counter() + 2e-4
        while True:  # a launch that is over by now (most small ones) costs no thread hand-over
            if done():
                wait()
                return
            if time.perf_counter() > spin_until:
                break
    finished = threading.Event()
    failure: list[BaseException] = []
    with _wait_lock:
        if _wait_jobs is None:
            import queue

            _wait_jobs = queue.SimpleQueue()
        if _idle_waiters:
            _idle_waiters -= 1
        else:
            threading.Thread(target=_waiter, name="xgpu-wait", daemon=True).start()
        _wait_jobs.put((wait, finished, failure))
    deadline = None if timeout is None else time.monotonic() + timeout
    while not finished.wait(0.05 if deadline is None else max(0.0, min(0.05, deadline - time.monotonic()))):
        if deadline is not None and time.monotonic() >= deadline:
            raise KernelTimeoutError(
                f"{what} did not finish within {timeout} s; a running kernel cannot be cancelled: it goes on until "
                "it ends, and work queued behind it on the device waits for it"
            )
    if failure:
        raise failure[0]
