"""Every code block of README.md and docs/*.md runs as shown.

A block's fence says what it is (the first word of its info string):

- ``python``: run, in one namespace per page (a page reads like one session); ``pycon``: ``>>>`` lines
  run and their output compared, as doctest does;
- ``console``: each ``$ command`` runs in a shell; the lines under it are its output, compared with
  what it printed (below);
- ``sh``: commands, one a line, that must succeed (their output is not shown);
- ``text``, ``mako``, ``json``, ``toml``: not code that runs (output, a file's content).

A block whose first line is a comment naming a file (``# test_mine.py``, ``## saxpy.mako``) is written
to that file (and not run), so that later blocks of the page can use it. Every page runs in a folder of its
own (with ``kernels/`` linked in, as in the repository), with a tuning store of its own; the pages
share the suite's compile cache, except cache.md, which clears its own.

``no-run`` in the info string (``console no-run (minutes per device)``) keeps a block from running; the
words after it say why (a GPU, a long benchmark, another machine), and the test is skipped with them.

Shown output is compared line by line: each shown line must start a printed line, in order, after
collapsing runs of spaces and table borders (a long printed line may be wrapped to the width).
Machine-specific parts are written as placeholders: ``...`` stands for any text, and a line holding
only ``...`` says that lines are left out; every number (timings, sizes, device ids, addresses)
matches any number.
"""

from __future__ import annotations

import doctest
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN_KINDS = {"python", "pycon", "console", "sh"}
TEXT_KINDS = {"text", "mako", "json", "toml"}
FILE_COMMENT = re.compile(r"^(?:#|##|//)\s*([\w.-]+\.(?:py|mako|toml|cfg|txt))\s*$")


@dataclass
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    info: str
    body: str

    @property
    def kind(self) -> str:
        return self.info.split()[0] if self.info.split() else ""

    @property
    def no_run(self) -> str | None:
        """The reason a block does not run, or None when it runs."""
        m = re.search(r"\bno-run\b(.*)", self.info)
        return m.group(1).strip(" ():") if m else None

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    found, lines, i = [], page.read_text().split("\n"), 0
    while i < len(lines):
        m = re.match(r"^(\s*)```(.*)$", lines[i])
        if m:
            indent, start = len(m.group(1)), i
            i += 1
            body = []
            while not lines[i].strip().startswith("```"):
                body.append(lines[i][indent:])
                i += 1
            found.append(Block(page, start + 1, m.group(2).strip(), "\n".join(body) + "\n"))
        i += 1
    return found


ALL = [b for page in PAGES for b in blocks(page)]


def test_every_block_says_what_it_is():
    unmarked = [b.id for b in ALL if b.kind not in RUN_KINDS | TEXT_KINDS]
    assert not unmarked, f"give these blocks an info string ({', '.join(sorted(RUN_KINDS | TEXT_KINDS))}): {unmarked}"
    reasonless = [b.id for b in ALL if b.no_run == ""]
    assert not reasonless, f"say why these blocks do not run (```console no-run (why)): {reasonless}"


# ---- output comparison ----------------------------------------------------------------------------

_BORDERS = str.maketrans({c: " " for c in "┃│┏┓┗┛┡┩└┘┌┐├┤┣┫━─┳┻╇╈┬┴┼╋═╞╡╪"})
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def _norm(line: str) -> str:
    line = _NUMBER.sub("0", line.translate(_BORDERS).replace("…", "..."))
    return " ".join(line.split())


def check_output(shown: list[str], got: str, where: str) -> None:
    """Each shown line, in order, is found at the start of a printed line (a long printed line may have
    been wrapped to the terminal's width: a space in the shown line also matches a line break)."""
    printed = "\n".join(_norm(line) for line in got.splitlines() if _norm(line))
    pos = 0
    for want in shown:
        want = _norm(want)
        if not want or want == "...":
            continue
        parts = [r"\s+".join(re.escape(w) for w in part.split(" ")) for part in want.split("...")]
        found = re.compile(r"(?ms)^" + ".*?".join(parts)).search(printed, pos)
        if found is None:
            raise AssertionError(f"{where}: the output shown is not what the command printed.\n"
                                 f"shown line not found (in order): {want!r}\n--- printed:\n{got}")
        pos = found.end()


# ---- running a page --------------------------------------------------------------------------------

class Page:
    """A page's folder, Python namespace and environment; its blocks run in order, each once."""

    def __init__(self, page: Path, folder: Path):
        self.folder = folder
        self.namespace: dict = {"__name__": "__docs__"}
        self.done: set[int] = set()
        venv_bin = str(Path(sys.executable).parent)
        self.env = {**os.environ, "PATH": venv_bin + os.pathsep + os.environ.get("PATH", ""),
                    "XGPU_TUNING_DIR": str(folder / ".tuning"), "COLUMNS": "120", "PYTHONPATH": str(folder),
                    "NO_COLOR": "1"}
        if page.name == "cache.md" or "XGPU_CACHE_DIR" not in os.environ:  # the page clears its cache
            self.env["XGPU_CACHE_DIR"] = str(folder / ".cache")
        (folder / "kernels").symlink_to(ROOT / "kernels")  # commands name the library's templates by path
        for key in ("XGPU_DEVICE", "XGPU_TEST_DEVICES", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST"):
            self.env.pop(key, None)

    def run(self, block: Block, monkeypatch) -> None:
        first = block.body.split("\n", 1)[0]
        m = FILE_COMMENT.match(first.strip())
        if m and block.kind in ("python", "mako", "toml", "text"):
            (self.folder / m.group(1)).write_text(block.body)
        if block.kind == "python" and not m:  # a block that names its file is a module: later blocks import it
            with monkeypatch.context() as mp:
                mp.chdir(self.folder)
                mp.syspath_prepend(str(self.folder))
                for key in ("XGPU_TUNING_DIR", "XGPU_CACHE_DIR"):
                    mp.setenv(key, self.env[key])
                exec(compile(block.body, block.id, "exec"), self.namespace)
        elif block.kind == "pycon":
            with monkeypatch.context() as mp:
                mp.chdir(self.folder)
                test = doctest.DocTestParser().get_doctest(block.body, self.namespace, block.id, str(block.page),
                                                           block.line)
                runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
                out: list[str] = []
                runner.run(test, out=out.append)
                assert not runner.failures, "".join(out)
        elif block.kind == "sh":
            for command in _commands(block.body.split("\n")):
                self.shell(command, block.id)
        elif block.kind == "console":
            lines = block.body.rstrip("\n").split("\n")
            i = 0
            while i < len(lines):
                if not lines[i].startswith("$ "):
                    raise AssertionError(f"{block.id}: output before any $ command: {lines[i]!r}")
                command = lines[i][2:]
                while command.endswith("\\"):
                    i += 1
                    command = command[:-1] + " " + lines[i].strip()
                i += 1
                shown = []
                while i < len(lines) and not lines[i].startswith("$ "):
                    shown.append(lines[i])
                    i += 1
                expect_error = any(s.startswith("error:") or "Error:" in s.split(" ", 1)[0] for s in shown[:1])
                got = self.shell(command, block.id, check=not expect_error)
                check_output(shown, got, f"{block.id}: $ {command}")

    def shell(self, command: str, where: str, check: bool = True) -> str:
        proc = subprocess.run(["bash", "-c", command], cwd=self.folder, env=self.env, capture_output=True,
                              text=True, timeout=300)
        if check and proc.returncode:
            raise AssertionError(f"{where}: `{command}` exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout + proc.stderr


def _commands(lines: list[str]) -> list[str]:
    out, pending = [], ""
    for line in lines:
        line = re.sub(r"\s+#\s.*$", "", line).strip()  # a comment after the command
        if not line or line.startswith("#"):
            continue
        pending += line[:-1] + " " if line.endswith("\\") else line
        if not line.endswith("\\"):
            out.append(pending)
            pending = ""
    return out


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    return {}


@pytest.mark.parametrize("block", [b for b in ALL if b.kind in RUN_KINDS], ids=lambda b: b.id)
def test_block_runs_as_shown(block, pages, tmp_path_factory, monkeypatch):
    if block.no_run is not None:
        pytest.skip(f"marked no-run: {block.no_run}")
    page = pages.get(block.page)
    if page is None:
        page = pages[block.page] = Page(block.page, tmp_path_factory.mktemp(block.page.stem))
    # the blocks before this one on its page first (they make its files and names), each once
    for earlier in [b for b in blocks(block.page) if b.line < block.line and b.line not in page.done]:
        page.done.add(earlier.line)
        if earlier.no_run is None and (earlier.kind in RUN_KINDS or FILE_COMMENT.match(earlier.body.split("\n")[0])):
            page.run(earlier, monkeypatch)
    page.done.add(block.line)
    page.run(block, monkeypatch)
