#!/usr/bin/env python3
"""Fails when the workspace's declared rust-version is older than a dependency's.

cargo only checks a dependency's rust-version against the toolchain in use, so a workspace can
declare a version that nothing proves. This compares the declared one with every locked
dependency's (cargo metadata, offline) and prints the highest. The standard library APIs our
own code uses are checked against the declared version by clippy's incompatible_msrv lint.
"""
import json
import subprocess
import sys


def version(v: str) -> tuple[int, ...]:
    return tuple(int(x) for x in v.split("."))


meta = json.loads(subprocess.run(["cargo", "metadata", "--format-version", "1", "--locked"], check=True,
                                 capture_output=True, text=True).stdout)
used = {n["id"] for n in meta["resolve"]["nodes"]}
workspace = set(meta["workspace_members"])
declared = {p["rust_version"] for p in meta["packages"] if p["id"] in workspace}
if len(declared) != 1 or None in declared:
    sys.exit(f"every workspace member must inherit one rust-version, found {sorted(map(str, declared))}")
(ours,) = declared
deps = [(version(p["rust_version"]), p["name"], p["version"]) for p in meta["packages"]
        if p["id"] in used and p["id"] not in workspace and p.get("rust_version")]
highest = max(deps)
print(f"rust-version {ours}; highest among {len(deps)} dependencies: {'.'.join(map(str, highest[0]))} ({highest[1]} {highest[2]})")
if version(ours) < highest[0]:
    sys.exit(f"rust-version {ours} is older than {highest[1]} {highest[2]} needs: raise it to {'.'.join(map(str, highest[0]))}")
