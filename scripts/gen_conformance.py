#!/usr/bin/python3
"""Generates the ONNX backend node test suite from Debian's python3-onnx.

Usage: /usr/bin/python3 scripts/gen_conformance.py OUT_DIR
Writes OUT_DIR/node/<case>/model.onnx + test_data_set_N/{input,output}_K.pb.
"""
import sys

import numpy as np

# onnx 1.12's generators use aliases that numpy 1.24 removed.
for alias, typ in [("float", float), ("int", int), ("bool", bool), ("object", object),
                   ("complex", complex), ("str", str)]:
    if not hasattr(np, alias):
        setattr(np, alias, typ)

from onnx.backend.test.cmd_tools import main  # noqa: E402

if len(sys.argv) != 2:
    sys.exit("usage: gen_conformance.py OUT_DIR")
sys.argv = ["backend-test-tools", "generate-data", "-o", sys.argv[1]]
main()
