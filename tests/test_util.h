// test_util.h: helpers shared by the tests: seeded random fills, tolerance comparison that
// prints the first mismatches and the max error, poisoning, GPU skipping and fixture paths.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "kernels/device.h"

namespace isonet::test {

inline std::vector<float> random_vector(size_t count, uint64_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(count);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Comparison result: |ref - got| <= atol + rtol*|ref| for every element; NaN never passes.
struct CloseReport {
  bool ok = true;
  size_t bad = 0;
  double max_abs = 0, max_rel = 0;
  std::string first;  // description of the first mismatches
};

inline CloseReport compare_close(const float* ref, const float* got, size_t count, double atol, double rtol) {
  CloseReport r;
  for (size_t i = 0; i < count; ++i) {
    double a = ref[i], b = got[i];
    double diff = std::fabs(a - b);
    bool nan = std::isnan(a) || std::isnan(b) || std::isinf(b) != std::isinf(a);
    if (!nan) {
      r.max_abs = std::max(r.max_abs, diff);
      if (std::fabs(a) > 0) r.max_rel = std::max(r.max_rel, diff / std::fabs(a));
    }
    if (nan || diff > atol + rtol * std::fabs(a)) {
      r.ok = false;
      if (r.bad++ < 5) {
        char buf[160];
        std::snprintf(buf, sizeof buf, "  [%zu] ref=%.9g got=%.9g diff=%.3g\n", i, a, b, diff);
        r.first += buf;
      }
    }
  }
  return r;
}

// CHECK that two arrays agree within tolerances (what: a label for the failure message).
#define CHECK_CLOSE_ARRAYS(what, ref, got, count, atol, rtol)                                          \
  do {                                                                                                 \
    auto rep_ = ::isonet::test::compare_close((ref), (got), (count), (atol), (rtol));                  \
    INFO(what << ": " << rep_.bad << " of " << (count) << " elements outside atol=" << (atol)         \
              << " rtol=" << (rtol) << ", max abs err " << rep_.max_abs << ", max rel err "           \
              << rep_.max_rel << "\n"                                                                 \
              << rep_.first);                                                                          \
    CHECK(rep_.ok);                                                                                    \
  } while (0)

// Poison value for outputs: a quiet NaN, so an unwritten element fails any comparison.
inline float poison_value() { return std::nanf(""); }

// GPU tests call this first; without a device it prints the CTest skip marker and returns false.
inline bool gpu_or_skip() {
  if (cuda_available()) return true;
  std::printf("ISONET_SKIPPED_NO_GPU: %s\n",
              built_with_cuda() ? "no usable CUDA device" : "built without the CUDA backend");
  return false;
}

// Path inside the source tree (tests run with the source tree as working directory).
inline std::string source_path(const std::string& rel) {
  const char* root = std::getenv("ISONET_SOURCE_DIR");
  return root ? std::string(root) + "/" + rel : rel;
}

}  // namespace isonet::test
