#!/usr/bin/python3
"""Folders are layers: a file of src/<layer>/ may include headers of its own layer
and of lower ones only, and each third-party library stays in the layers that own
it. Fails naming the file, the line and the include that breaks the rule.

The order (lowest first) is docs/ARCHITECTURE.md's layer table:
  core < graph < kernels < runtime < optimize < telemetry < security < repository
  < serving < rollout < frontend < cli

usage: layers_test.py SOURCE_DIR
"""
import os
import re
import sys

LAYERS = ["core", "graph", "kernels", "runtime", "optimize", "telemetry", "security", "repository",
          "serving", "rollout", "frontend", "cli"]
RANK = {name: i for i, name in enumerate(LAYERS)}

# Third-party headers (by the first path component of the include) and the layers
# that may include them; libraries not listed here are not restricted.
OWNERS = {
    "dnnl.hpp": {"kernels"}, "dnnl.h": {"kernels"}, "oneapi": {"kernels"},
    "onnx": {"graph", "optimize", "cli"},
    "boost": {"frontend", "rollout"}, "grpc": {"frontend"}, "grpcpp": {"frontend"},
    "sqlite3.h": {"security", "rollout"}, "yaml-cpp": {"security", "rollout"}, "seccomp.h": {"security"},
    "openssl": {"security", "frontend"},
    "zlib.h": {"frontend"},
    "rapidjson": {"telemetry", "frontend"},
    "CLI": {"cli"},
    "google": {"repository", "frontend"},
}

INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def check(src_dir):
    problems = []
    for layer in sorted(os.listdir(src_dir)):
        folder = os.path.join(src_dir, layer)
        if not os.path.isdir(folder):
            continue
        if layer not in RANK:
            problems.append(f"src/{layer}/ is not a layer of the table (add it, in order)")
            continue
        for root, _, files in os.walk(folder):
            for name in sorted(files):
                if not name.endswith((".h", ".cc")):
                    continue
                path = os.path.join(root, name)
                rel = os.path.relpath(path, os.path.dirname(src_dir))
                with open(path, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        kind, target = m.groups()
                        first = target.split("/")[0]
                        if kind == '"' and first in RANK and RANK[first] > RANK[layer]:
                            problems.append(f"{rel}:{number}: {layer} includes \"{target}\" of the higher layer {first}")
                        if kind == "<" and first in OWNERS and layer not in OWNERS[first]:
                            owners = ", ".join(sorted(OWNERS[first]))
                            problems.append(f"{rel}:{number}: <{target}> belongs to {owners}, not {layer}")
    return problems


def main():
    src_dir = os.path.join(sys.argv[1], "src")
    problems = check(src_dir)
    for p in problems:
        print(p)
    print(f"layers: {len(problems)} problem(s)" if problems else "layers: every include goes down")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
