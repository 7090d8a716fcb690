"""What the tools write and print for people: tables that wrap instead of cutting cells, the parity
matrix on the console, and report files checked before the work and written whole."""

from __future__ import annotations

import argparse
import contextlib
import os
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table as RichTable

from xgpu.errors import InvalidArgumentError


class Table(RichTable):
    """A table whose long cells wrap onto more lines, never cut to ``n…``, whatever the width."""

    def add_column(self, header: Any = "", *args: Any, overflow: Any = "fold", **kwargs: Any) -> None:
        super().add_column(header, *args, overflow=overflow, **kwargs)


def _matrix_table(matrix, title: str) -> Table:
    from rich.markup import escape

    from xgpu.tools.parity import cell_text

    table = Table(title=title, title_justify="left")
    for col in ("kernel", "case", "dtype"):
        table.add_column(col)
    for c in matrix.columns:
        table.add_column(escape(str(c["label"])))
    style = {"pass": "green", "fail": "bold red", "skip": "dim"}
    for row in matrix.rows:
        cells = []
        for c in matrix.columns:
            cell = matrix.cells.get((row, c["key"]))
            cells.append(f"[{style[cell['status']]}]{cell_text(cell)}[/]" if cell else "-")
        table.add_row(*(escape(str(x)) for x in row), *cells, style="on dark_red" if matrix.divergent(row) else None)
    return table


def _print_matrix(matrix, console: Console, title: str) -> None:
    console.print(_matrix_table(matrix, title))
    counts = matrix.counts()
    console.print(f"{counts['pass']} pass, {counts['fail']} fail, {counts['skip']} skip "
                  "(cells: normwise relative error against a float64 reference)", highlight=False)
    for row in matrix.rows:
        for c in matrix.columns:
            cell = matrix.cells.get((row, c["key"]))
            if cell and cell["status"] == "fail":
                console.print(f"FAIL {' | '.join(row)} on {c['label']}:", style="bold red", markup=False, highlight=False)
                console.print("  " + cell.get("detail", "").replace("\n", "\n  "), markup=False, highlight=False)


_OUTPUT_MARKS = {".json": '"format": "xgpu-parity/', ".html": "<title>xgpu parity</title>", ".md": "# xgpu parity"}


def _check_writable(*paths: str | Path | None) -> None:
    """Refuse an output file that cannot be written before the work that fills it starts, not after: a
    folder at its path, a folder that is not writable, or a file there that xgpu did not write."""
    for path in paths:
        if path is None:
            continue
        target = Path(path)
        if target.is_dir():
            raise InvalidArgumentError(f"cannot write {path}: it is a folder; name a file (e.g. {target / 'parity.json'})")
        folder = target.resolve().parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise InvalidArgumentError(f"cannot write {path}: {folder} is not a folder you can write to")
        if target.exists() or target.is_symlink():
            try:
                head = target.open("rb").read(4096).decode(errors="replace") if target.is_file() else ""
            except OSError:
                head = ""
            marks = [m for m in _OUTPUT_MARKS.values() if m in head]
            if not marks:
                raise InvalidArgumentError(
                    f"{path} exists and is not a report xgpu wrote: it is left alone; remove it or name another file"
                )


def _write_atomic(path: str | Path, text: str) -> None:
    """Write a whole file or nothing: a temporary file beside it, renamed into place."""
    import tempfile

    target = Path(path)
    fd, tmp = tempfile.mkstemp(dir=target.resolve().parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _write_outputs(matrix, args: argparse.Namespace, console: Console) -> None:
    from xgpu.tools.parity import html_matrix, markdown_matrix

    if getattr(args, "html", None):
        _write_atomic(args.html, html_matrix(matrix))
        console.print(f"HTML matrix: {args.html}", highlight=False, markup=False)
    if getattr(args, "markdown", None):
        _write_atomic(args.markdown, markdown_matrix(matrix))
        console.print(f"Markdown matrix: {args.markdown}", highlight=False, markup=False)


