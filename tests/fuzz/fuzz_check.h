#pragma once

#include <cstdio>
#include <cstdlib>

// An invariant broken by a fuzz input: report it and abort, so libFuzzer saves
// the input as a crash artifact.
#define PPE_FUZZ_CHECK(cond)                                                                 \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: fuzz invariant failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)
