// What the fuzz targets share: a check that aborts (so libFuzzer records the input as a crash)
// when a property every input must keep is broken.
#pragma once

#include <cstdio>
#include <cstdlib>

#define SEXTANT_FUZZ_CHECK(cond)                                                       \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: property broken: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)
