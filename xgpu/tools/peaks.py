"""Published peak figures of GPU models (``gpu_peaks.json``, data beside this module) and the rule that
matches a device to its row: by identity, never by a substring of a marketing name.

A device matches a row by, in order: its PCI vendor and device id, where the backend can read them
(AMD's OpenCL driver reports the device id) and the id belongs to one row only; else the board name
AMD's driver reports; else the device's own name. Names are compared whole, after
:func:`normalise` (case, trademark signs, punctuation, a leading vendor word and a trailing
"Graphics"): ``NVIDIA A100-SXM4-40GB`` matches the A100 SXM4 40GB row and ``NVIDIA RTX A1000`` matches
nothing. Where one name belongs to several rows (the 8 GB and 16 GB Arc A770), the device's memory
size picks the row; where it cannot, nothing matches. A device reporting far less memory than its
model (one die of an MI250X, one stack of a Max 1550, a partition) matches nothing: the model's
figures are not its own. CPUs match nothing.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

#: The figures of a row, with their units (every one may be null: not published, or not known for certain).
FIGURES = {
    "compute_units": "SMs, CUs or Xe-cores (unit_kind)",
    "boost_clock_mhz": "MHz",
    "memory_gb": "GB",
    "bandwidth_gbps": "GB/s",
    "fp32_tflops": "TFLOP/s, vector units",
    "fp16_tflops": "TFLOP/s, vector units (non-tensor)",
    "fp16_tensor_tflops": "TFLOP/s, tensor/matrix units, dense",
    "bf16_tensor_tflops": "TFLOP/s, tensor/matrix units, dense",
    "int8_tops": "TOP/s, tensor/matrix units, dense",
}

_VENDOR_WORDS = ("nvidia", "amd", "intel")


def normalise(name: str) -> str:
    """A device name as compared with the table's: lower case, no (R)/(TM)/®/™, punctuation as spaces,
    no leading vendor word nor trailing "graphics", single spaces."""
    text = name.lower()
    text = re.sub(r"\((?:r|tm)\)|[®™]", " ", text)
    text = re.sub(r"[-_/,:]+", " ", text)
    words = text.split()
    while words and words[0] in _VENDOR_WORDS:
        words = words[1:]
    if words and words[-1] == "graphics":
        words = words[:-1]
    return " ".join(words)


@functools.lru_cache(maxsize=1)
def table() -> list[dict[str, Any]]:
    """Every row of the published figures, as stored (``gpu_peaks.json``)."""
    text = resources.files("xgpu.tools").joinpath("gpu_peaks.json").read_text(encoding="utf-8")
    return list(json.loads(text)["rows"])


def _memory_fits(row: dict[str, Any], memory_bytes: int | None, within: float) -> bool:
    return not (memory_bytes and row["memory_gb"]) or abs(memory_bytes / 1e9 / row["memory_gb"] - 1) <= within


def _pick(rows: list[dict[str, Any]], memory_bytes: int | None) -> dict[str, Any] | None:
    if len(rows) > 1:  # one name, several memory sizes: the size the device reports decides
        rows = [r for r in rows if memory_bytes and r["memory_gb"] and _memory_fits(r, memory_bytes, 0.15)]
    # a device with far less memory than its model is part of one (one die of a two-die module, one
    # stack of a two-stack GPU, a partition): the model's figures are not its own
    if len(rows) == 1 and _memory_fits(rows[0], memory_bytes, 0.25):
        return rows[0]
    return None


def match(name: str, *, type: str = "gpu", extra: dict[str, Any] | None = None,
          memory_bytes: int | None = None) -> dict[str, Any] | None:
    """The row of the published figures for a device, or None (a CPU, a model not in the table, or
    one the device's identity cannot tell apart from another)."""
    if type == "cpu":
        return None
    extra = extra or {}
    rows = table()
    vendor, device_id = extra.get("vendor_id"), extra.get("pci_device_id")
    if isinstance(vendor, int) and isinstance(device_id, int) and device_id:
        pci = f"{vendor:04x}:{device_id:04x}"
        found = _pick([r for r in rows if pci in r["pci_ids"]], memory_bytes)
        if found:
            return found
    for candidate in (extra.get("board_name"), name):
        if isinstance(candidate, str) and candidate.strip():
            key = normalise(candidate)
            found = _pick([r for r in rows if key in {normalise(n) for n in r["names"]}], memory_bytes)
            if found:
                return found
    return None


def match_device(device: Any) -> dict[str, Any] | None:
    """:func:`match` for an :class:`xgpu.Device`."""
    return match(device.name, type=device.type, extra=device.extra, memory_bytes=device.global_mem_bytes)


def markdown() -> str:
    """The table as Markdown, one line a row (docs/hardware.md holds it; a test keeps the two equal)."""

    def fig(value: float | None) -> str:
        return "" if value is None else f"{value:g}"

    lines = ["| model | vendor | PCI ids | CUs | boost MHz | memory GB | GB/s | FP32 TF/s | FP16 TF/s vector | "
             "FP16 TF/s tensor | BF16 TF/s tensor | INT8 TOPS tensor | source |", "|---" * 13 + "|"]
    for r in table():
        units = f"{r['compute_units']} {r['unit_kind']}s" if r["compute_units"] else ""
        cells = [r["model"], r["vendor"], ", ".join(r["pci_ids"]), units, fig(r["boost_clock_mhz"]),
                 fig(r["memory_gb"]), fig(r["bandwidth_gbps"]), fig(r["fp32_tflops"]), fig(r["fp16_tflops"]),
                 fig(r["fp16_tensor_tflops"]), fig(r["bf16_tensor_tflops"]), fig(r["int8_tops"]),
                 f"[{r['source'].split('/')[2]}]({r['source']})"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
