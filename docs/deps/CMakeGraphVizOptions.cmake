# Options for `cmake --graphviz` (read from the build directory; graph.sh copies it
# there): our own targets only, one graph, no per-target files.
set(GRAPHVIZ_GRAPH_NAME "ppe_targets")
set(GRAPHVIZ_EXTERNAL_LIBS FALSE)
set(GRAPHVIZ_GENERATE_PER_TARGET FALSE)
set(GRAPHVIZ_GENERATE_DEPENDERS FALSE)
set(GRAPHVIZ_CUSTOM_TARGETS FALSE)
# Test binaries, fuzzers and benchmarks would double the graph; it shows the product.
set(GRAPHVIZ_IGNORE_TARGETS "_tests$" "^ppe_catch_main$" "_fuzz$" "_bench$" "^replay_eval$")
