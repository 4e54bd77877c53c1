#!/usr/bin/env bash
# Draws the dependency graph of PPE's own CMake targets (external libraries left
# out) as docs/deps/targets.dot and docs/deps/targets.png.
# usage: docs/deps/graph.sh        (needs cmake and graphviz's `dot`)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cp "$here/CMakeGraphVizOptions.cmake" "$work/"
cmake -S "$root" -B "$work" -G Ninja -DPPE_BUILD_TESTS=OFF --graphviz="$work/targets.dot" >/dev/null
# cmake's shapes: executables are eggs, static libraries octagons, interface
# libraries pentagons; solid edges are PUBLIC links, dotted ones PRIVATE. Its legend
# (every kind of library CMake knows) is dropped; docs/architecture.md gives these.
sed -e '/^subgraph clusterLegend {/,/^}/d' \
    -e 's/^digraph "ppe_targets" {/digraph "ppe_targets" {\n  node [fontname = "Helvetica"];\n  ranksep = 0.9; nodesep = 0.3; concentrate = true;/' \
    "$work/targets.dot" >"$here/targets.dot"
dot -Tpng -Gdpi=110 "$here/targets.dot" -o "$here/targets.png"
echo "wrote $here/targets.dot and $here/targets.png"
