#!/usr/bin/env python3
"""The README's two commands: `python3 run.py demo` and `python3 run.py test`.

Creates `.venv` on first use, installs twinline with its `embedded` and `dev` extras from this
repository's own files, then runs `twinline demo` or the test suite inside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PY = VENV / "bin" / "python"
STAMP = VENV / ".twinline-installed"

if sys.version_info < (3, 11):  # noqa: UP036 - this guard is for users running an older python3
    sys.exit("twinline needs Python 3.11 or newer (found %d.%d)" % sys.version_info[:2])  # noqa: UP031


def _install() -> None:
    pyproject = ROOT / "pyproject.toml"
    if STAMP.exists() and STAMP.read_text() == pyproject.read_text():
        return
    if not PY.exists():
        print("creating .venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    print("installing twinline and its dependencies into .venv ...", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}[embedded,dev]"], check=True)
    STAMP.write_text(pyproject.read_text())


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "--install-only"}:
        print("usage: python3 run.py demo [twinline demo options] | test [pytest options] | --install-only")
        return 2
    _install()
    verb, rest = argv[0], argv[1:]
    if verb == "--install-only":
        return 0
    env = dict(os.environ)
    if verb == "demo":
        return subprocess.call([str(VENV / "bin" / "twinline"), "demo", *rest], cwd=ROOT, env=env)
    # Integration tests talk to real services on a shared 2-core machine; a test that fails is re-run
    # up to twice and every re-run is listed in the summary (pytest-rerunfailures), so a timing hiccup
    # of a service does not hide the run's result while a real failure still fails.
    args = [str(PY), "-m", "pytest", "-p", "no:cacheprovider", "--reruns", "2", *rest]
    return subprocess.call(args, cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
