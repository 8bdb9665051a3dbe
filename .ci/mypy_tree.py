"""Build a symlink tree `twinline/{uns,edge,...}` so mypy sees the installed package layout.

setuptools' editable install maps twinline.<box> to the repo's top-level folders with an import hook
that mypy cannot follow; a tree of symlinks gives mypy the same layout without moving any file.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path


def main(target: str) -> int:
    root = Path(__file__).resolve().parent.parent
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    out = Path(target).resolve()
    shutil.rmtree(out, ignore_errors=True)
    pkg = out / "twinline"
    pkg.mkdir(parents=True)
    for name, folder in mapping.items():
        src = root / folder
        if name == "twinline":
            for item in src.iterdir():
                (pkg / item.name).symlink_to(item)
        else:
            (pkg / name.split(".", 1)[1]).symlink_to(src, target_is_directory=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
