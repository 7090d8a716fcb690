"""The tuner's search: a budgeted hill-climb over a kernel's variants (``xgpu tune``).

A kernel that can be tuned describes itself as a :class:`Tunable` (its default variant, the
neighbours of a variant, and how to time one while checking its result), registered through the
``xgpu_register_tunables`` hook. :func:`tune` walks from the default towards faster neighbours until
the time budget is spent, discarding candidates that fail to compile, fail to launch or give a wrong
answer. What it finds goes to the store the library reads (:mod:`xgpu.tuning`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from xgpu.errors import InvalidArgumentError, XgpuError

__all__ = ["BudgetExceeded", "TuneResult", "Tunable", "tune"]


@dataclass
class Tunable:
    """A kernel's search space on one device and dtype.

    ``default``: the variant the library picks untuned; ``neighbours(config)``: variants one step away
    (already limited to what the device can take); ``measure(config)``: GF/s of one variant on the
    tuning shape, raising ``AssertionError`` for a wrong result (or an xgpu error when it cannot run);
    ``label(config)`` names a variant; ``as_dict(config)`` is what gets stored.
    """

    kernel: str
    shape_class: str
    shape: str
    default: Any
    neighbours: Callable[[Any], list[Any]]
    measure: Callable[[Any], float]
    label: Callable[[Any], str]
    as_dict: Callable[[Any], dict[str, Any]]
    #: ``compile(config, timeout_s)``: build the variant where it can be stopped (a child process that
    #: fills the compile cache), raising :class:`BudgetExceeded` when it does not finish in time.
    compile: Callable[[Any, float], None] | None = None


class BudgetExceeded(XgpuError):
    """A candidate could not be compiled in the time left."""


@dataclass
class TuneResult:
    best: Any
    best_gflops: float
    default: Any
    default_gflops: float
    tried: list[tuple[str, float | None, str]] = field(default_factory=list)  # (label, GF/s, why discarded)
    seconds: float = 0.0
    stop: str = ""

    @property
    def speedup(self) -> float:
        return self.best_gflops / self.default_gflops if self.default_gflops else float("nan")


def tune(t: Tunable, budget_s: float,
         progress: Callable[[str, float | None, str, float], None] | None = None) -> TuneResult:
    """Hill-climb from ``t.default``: measure the neighbours of the best variant so far, move to any that is
    faster, until no neighbour is left or the budget would be overrun. ``progress(label, gflops, note,
    elapsed)`` is called after each candidate."""
    if budget_s <= 0:
        raise InvalidArgumentError(f"the tuning budget must be positive, not {budget_s} s")
    start = time.perf_counter()
    costs: list[float] = []

    def attempt(config, compile: bool = True) -> tuple[float | None, str]:
        t0 = time.perf_counter()
        try:
            if compile and t.compile is not None:
                # leave room for the timing runs, whose cost is known from earlier candidates
                t.compile(config, budget_s - (t0 - start) - 1.25 * max(costs, default=0.0))
                t0 = time.perf_counter()
            value, why = t.measure(config), ""
        except BudgetExceeded:
            raise
        except AssertionError as exc:
            value, why = None, f"wrong result: {str(exc).splitlines()[0] if str(exc) else 'mismatch'}"
        except XgpuError as exc:
            value, why = None, f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        costs.append(time.perf_counter() - t0)
        result.tried.append((t.label(config), value, why))
        if progress:
            progress(t.label(config), value, why, time.perf_counter() - start)
        return value, why

    result = TuneResult(t.default, 0.0, t.default, 0.0)
    value, why = attempt(t.default)
    if value is None:
        raise XgpuError(f"the default {t.kernel} variant {t.label(t.default)} failed on this device: {why}")
    result.best_gflops = result.default_gflops = value
    seen = {t.label(t.default)}
    frontier = list(t.neighbours(t.default))
    result.stop = "no untried neighbour of the best variant is left"
    while frontier:
        config = frontier.pop(0)
        name = t.label(config)
        if name in seen:
            continue
        elapsed = time.perf_counter() - start
        # timing runs cannot be interrupted: start a candidate only if the slowest so far would still fit
        if elapsed + 1.25 * max(costs) > budget_s:
            result.stop = f"budget: {budget_s:.0f} s would be overrun by another candidate"
            break
        seen.add(name)
        try:
            value, _ = attempt(config)
        except BudgetExceeded as exc:
            result.stop = f"budget: {exc}"
            break
        if value is not None and value > result.best_gflops * 1.02:
            result.best, result.best_gflops = config, value
            frontier = [c for c in t.neighbours(config) if t.label(c) not in seen] + frontier
    # measure the default and the winner once more, side by side, so that drift in the machine's speed
    # during the search does not make the comparison (each keeps its better figure)
    if result.best is not t.default and time.perf_counter() - start + 2.5 * max(costs) <= budget_s:
        for config, attr in ((t.default, "default_gflops"), (result.best, "best_gflops")):
            again, _ = attempt(config, compile=False)  # both are compiled by now
            if again is not None:
                setattr(result, attr, max(getattr(result, attr), again))
        if result.best_gflops < result.default_gflops:
            result.best, result.best_gflops = t.default, result.default_gflops
    result.seconds = time.perf_counter() - start
    return result
