#!/usr/bin/env python3
"""Reports import cycles between the extension crate's modules (src/):
an edge a -> b for every path to b in a's code (`super::b`, `crate::area::b`,
`use` lists; comments ignored). Exit status 1 when a cycle exists.
Usage: scripts/module_cycles.py [SRC_DIR]"""
import os
import re
import sys

SRC = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "src")


def module_of(path):
    rel = os.path.relpath(path, SRC)[:-3]
    return rel[:-4] if rel.endswith("/mod") else rel


def code_of(text):
    # drop comments (line and doc comments); strings rarely hold paths here
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def edges(mods):
    out = {m: set() for m in mods}
    for m, path in mods.items():
        code = code_of(open(path).read())
        parent = m.rsplit("/", 1)[0] if "/" in m else ""
        for sup in re.finditer(r"\bsuper::(\w+)", code):
            target = f"{parent}/{sup.group(1)}" if parent else sup.group(1)
            if target in mods and target != m:
                out[m].add(target)
        for cr in re.finditer(r"\bcrate::(\w+)::(\w+)", code):
            target = f"{cr.group(1)}/{cr.group(2)}"
            if target in mods and target != m:
                out[m].add(target)
        # `use super::{a, b::c}` lists
        for group in re.finditer(r"\bsuper::\{([^}]*)\}", code):
            for name in re.findall(r"(?:^|,)\s*(\w+)", group.group(1)):
                target = f"{parent}/{name}" if parent else name
                if target in mods and target != m:
                    out[m].add(target)
    return out


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return found


def main():
    mods = {}
    for dirpath, _, files in os.walk(SRC):
        for f in files:
            if f.endswith(".rs"):
                p = os.path.join(dirpath, f)
                mods[module_of(p)] = p
    found = cycles(edges(mods))
    for comp in found:
        print("module cycle: " + " <-> ".join(comp))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
