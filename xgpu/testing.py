"""Comparing device results with references: tolerances per dtype and failures that explain themselves."""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np

__all__ = ["assert_close", "compare", "poison", "tolerance"]

# relative tolerances against a float64 reference, scaled by the reference's magnitude
# (float16 and bfloat16 results are float32 sums rounded once: about 4 and 2 units of their last place)
_RTOL = {np.dtype(np.float16): 2e-3, np.dtype(ml_dtypes.bfloat16): 8e-3, np.dtype(np.float32): 2e-5,
         np.dtype(np.float64): 1e-12}


def tolerance(dtype: Any, terms: int = 1) -> float:
    """Relative tolerance for a result of ``dtype`` summed over ``terms`` products (0 for integers)."""
    dt = np.dtype(dtype)
    if dt.kind in "iub":
        return 0.0
    base = _RTOL[dt] if dt in _RTOL else float(np.finfo(dt).eps) * 8
    return base * max(1.0, float(np.sqrt(max(terms, 1))))


def poison(dtype: Any) -> Any:
    """A value no kernel writes by accident: NaN for floats, the maximum for integers."""
    dt = np.dtype(dtype)
    return np.iinfo(dt).max if dt.kind in "iu" else np.nan


def compare(actual: Any, reference: Any, *, dtype: Any = None, rtol: float | None = None,
            terms: int = 1, what: str = "result") -> tuple[bool, float, str]:
    """Compare as :func:`assert_close` does; return ``(ok, max relative error, explanation)``.

    The relative error is normwise, ``max|actual - reference| / max|reference|`` (NaN where any element
    is NaN); the explanation is empty when ``ok``.
    """
    actual = np.asarray(actual)
    reference = np.asarray(reference)
    if actual.shape != reference.shape:
        return False, float("nan"), f"{what}: shape {actual.shape} differs from the reference's {reference.shape}"
    dt = np.dtype(dtype) if dtype is not None else actual.dtype
    tol = tolerance(dt, terms) if rtol is None else rtol
    if actual.size == 0:
        return True, 0.0, ""
    exact = dt.kind in "iub"
    ref = reference if exact else reference.astype(np.float64)
    act = actual if exact else actual.astype(np.float64)
    scale = float(np.nanmax(np.abs(ref))) or 1.0
    err = np.abs(act - ref)
    nans = int(np.isnan(err).sum()) if not exact else 0
    max_rel = float("nan") if nans else float(err.max()) / scale
    bad = ~(err <= tol * scale)  # NaN (unwritten, poisoned) counts as bad
    if not bad.any():
        return True, max_rel, ""
    worst = np.unravel_index(int(np.nanargmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -1))), act.shape)
    finite = err[~np.isnan(err)] if not exact else err
    worst_rel = float(finite.max()) / scale if finite.size else float("nan")
    return False, max_rel, (
        f"{what}: {int(bad.sum())} of {act.size} elements differ beyond tolerance {tol:.1e} (x max|ref| = "
        f"{scale:.3g}); worst at index {tuple(int(i) for i in worst)}: got {act[worst].item()!r}, expected {ref[worst].item()!r}, "
        f"abs error {err[worst]:.3g}, max relative error {worst_rel:.3g}"
        + (f"; {nans} elements NaN (never written?)" if nans else "")
    )


def assert_close(actual: Any, reference: Any, *, dtype: Any = None, rtol: float | None = None,
                 terms: int = 1, what: str = "result") -> None:
    """Assert that ``actual`` matches ``reference`` (ideally float64) within the dtype's tolerance.

    The error is normwise: ``|actual - reference| <= rtol * max|reference|`` elementwise, exact for
    integers. On failure the message says how many elements are off, the worst one and where.
    """
    ok, _, why = compare(actual, reference, dtype=dtype, rtol=rtol, terms=terms, what=what)
    if not ok:
        raise AssertionError(why)
