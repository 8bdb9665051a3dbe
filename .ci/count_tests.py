"""Fail CI when a junit report shows no test that ran (a suite that silently collects nothing)."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET


def main(path: str) -> int:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
    tests = sum(int(s.get("tests", 0)) for s in suites)
    skipped = sum(int(s.get("skipped", 0)) for s in suites)
    failed = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
    print(f"{path}: {tests} tests, {tests - skipped - failed} passed, {skipped} skipped, {failed} failed")
    return 1 if tests - skipped == 0 or failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
