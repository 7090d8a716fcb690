"""Type-check xgpu as it is installed: ``xgpu``, ``xgpu.backends`` (from ``backends/``), ``xgpu.kernels``
(from ``kernels/``), with mypy (settings in pyproject.toml's ``[tool.mypy]``).

mypy cannot follow the import hook of an editable install, nor setuptools' package-dir mapping, so this
builds the installed layout out of symbolic links in a temporary folder, runs ``mypy -p xgpu`` there, and
names the files by their place in the repository in what it prints. Usage: ``python scripts/typecheck.py``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# package -> folder in the repository, as [tool.setuptools.package-dir] maps them
MAPPED = {"backends": ROOT / "backends", "kernels": ROOT / "kernels"}


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="xgpu-typecheck-") as tmp:
        package = Path(tmp) / "xgpu"
        package.mkdir()
        for entry in (ROOT / "xgpu").iterdir():
            if entry.name not in MAPPED and entry.name != "__pycache__":
                (package / entry.name).symlink_to(entry)
        for name, folder in MAPPED.items():
            (package / name).symlink_to(folder)
        cmd = [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"),
               "--cache-dir", str(ROOT / ".mypy_cache"), "-p", "xgpu", *sys.argv[1:]]
        proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True,
                              env={**os.environ, "MYPYPATH": tmp})
    for stream, text in ((sys.stdout, proc.stdout), (sys.stderr, proc.stderr)):
        stream.write(re.sub(r"(?m)^xgpu/(backends|kernels)/", r"\1/", text))
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
