"""The docs name every hook with its signature, every CLI command and every error class."""

from __future__ import annotations

import inspect

import pytest

import xgpu
from xgpu import hookspecs
from xgpu.tools.cli import build_parser

from .conftest import ROOT

DOCS = ROOT / "docs"


def _hooks():
    return [(n, f) for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if n.startswith("xgpu_")]


@pytest.mark.parametrize("name,func", _hooks())
def test_hook_documented_with_signature(name, func):
    params = ", ".join(inspect.signature(func).parameters)
    assert f"{name}({params})" in (DOCS / "plugins.md").read_text()


def test_every_cli_command_documented():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    text = (DOCS / "cli.md").read_text()
    for command in sub.choices:
        assert f"xgpu {command}" in text, command


def test_every_error_documented():
    text = (DOCS / "errors.md").read_text()
    for name in xgpu.errors.__all__:
        assert name in text, name


def test_readme_has_the_two_commands_and_links():
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text
    for page in DOCS.glob("*.md"):
        assert f"docs/{page.name}" in text, f"README does not link docs/{page.name}"
