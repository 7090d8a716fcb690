"""Comparing device results with references: tolerances per dtype and failures that explain themselves."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["assert_close", "poison", "tolerance"]

# relative tolerances against a float64 reference, scaled by the reference's magnitude
_RTOL = {np.dtype(np.float16): 2e-3, np.dtype(np.float32): 2e-5, np.dtype(np.float64): 1e-12}


def tolerance(dtype: Any, terms: int = 1) -> float:
    """Relative tolerance for a result of ``dtype`` summed over ``terms`` products (0 for integers)."""
    dt = np.dtype(dtype)
    if dt.kind in "iub":
        return 0.0
    base = _RTOL.get(dt, float(np.finfo(dt).eps) * 8)
    return base * max(1.0, float(np.sqrt(max(terms, 1))))


def poison(dtype: Any) -> Any:
    """A value no kernel writes by accident: NaN for floats, the maximum for integers."""
    dt = np.dtype(dtype)
    return np.iinfo(dt).max if dt.kind in "iu" else np.nan


def assert_close(actual: Any, reference: Any, *, dtype: Any = None, rtol: float | None = None,
                 terms: int = 1, what: str = "result") -> None:
    """Assert that ``actual`` matches ``reference`` (ideally float64) within the dtype's tolerance.

    The error is normwise: ``|actual - reference| <= rtol * max|reference|`` elementwise, exact for
    integers. On failure the message says how many elements are off, the worst one and where.
    """
    actual = np.asarray(actual)
    reference = np.asarray(reference)
    if actual.shape != reference.shape:
        raise AssertionError(f"{what}: shape {actual.shape} differs from the reference's {reference.shape}")
    dt = np.dtype(dtype) if dtype is not None else actual.dtype
    tol = tolerance(dt, terms) if rtol is None else rtol
    if actual.size == 0:
        return
    ref = reference.astype(np.float64) if dt.kind not in "iub" else reference
    act = actual.astype(np.float64) if dt.kind not in "iub" else actual
    scale = float(np.nanmax(np.abs(ref))) or 1.0
    err = np.abs(act - ref)
    bad = ~(err <= tol * scale)  # NaN (unwritten, poisoned) counts as bad
    if not bad.any():
        return
    worst = np.unravel_index(int(np.nanargmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -1))), act.shape)
    raise AssertionError(
        f"{what}: {int(bad.sum())} of {act.size} elements differ beyond tolerance {tol:.1e} (x max|ref| = "
        f"{scale:.3g}); worst at index {tuple(int(i) for i in worst)}: got {act[worst]!r}, expected {ref[worst]!r}, "
        f"abs error {err[worst]:.3g}, max relative error {float(np.nanmax(err) / scale) if not np.isnan(err).all() else float('nan'):.3g}"
        + (f"; {int(np.isnan(act).sum())} elements NaN (never written?)" if np.isnan(act).any() else "")
    )
