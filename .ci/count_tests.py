#!/usr/bin/env python3
"""Counts GoogleTest cases in bazel-testlogs/**/test.xml; prints 'N passed, N failed, N skipped'."""
import pathlib
import sys
import xml.etree.ElementTree as ET

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "bazel-testlogs")
passed = failed = skipped = 0
for xml in sorted(root.glob("**/test.xml")):
    try:
        tree = ET.parse(xml)
    except ET.ParseError:
        # A test binary that crashed leaves Bazel's own stub or nothing usable.
        print(f"unreadable {xml}", file=sys.stderr)
        failed += 1
        continue
    cases = list(tree.iter("testcase"))
    if not cases:
        # Bazel's generated XML for a target that died before GoogleTest wrote one.
        root_element = tree.getroot()
        if root_element.find(".//failure") is not None or root_element.find(".//error") is not None:
            failed += 1
        continue
    for case in cases:
        if case.find("failure") is not None or case.find("error") is not None:
            failed += 1
        elif case.get("result") == "skipped" or case.find("skipped") is not None:
            skipped += 1
        else:
            passed += 1
print(f"{passed} passed, {failed} failed, {skipped} skipped")
