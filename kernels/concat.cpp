// concat.cpp: CPU twin of channel concatenation (U-Net skips) and its backward (a split).
// In NCHW each image's channels are contiguous, so both directions are two block copies per image.
#include "kernels/concat.h"

#include <cstring>

#include "kernels/cpu_parallel.h"
#include "kernels/op_checks.h"

namespace isonet::cpu {

void concat_forward(const ConcatShape& s, const float* a, const float* b, float* y) {
  const char* op = "concat_forward";
  check_concat_shape(s, op);
  check_not_null(a, op, "a");
  check_not_null(b, op, "b");
  check_not_null(y, op, "y");
  const size_t plane = static_cast<size_t>(s.h) * s.w;
  const size_t na = s.c_a * plane, nb = s.c_b * plane;
#pragma omp parallel for schedule(static) if (s.n * (na + nb) >= kParallelMinElements)
  for (int i = 0; i < s.n; ++i) {
    std::memcpy(y + i * (na + nb), a + i * na, na * sizeof(float));
    std::memcpy(y + i * (na + nb) + na, b + i * nb, nb * sizeof(float));
  }
}

void concat_backward(const ConcatShape& s, const float* dy, float* da, float* db) {
  const char* op = "concat_backward";
  check_concat_shape(s, op);
  check_not_null(dy, op, "dy");
  const size_t plane = static_cast<size_t>(s.h) * s.w;
  const size_t na = s.c_a * plane, nb = s.c_b * plane;
#pragma omp parallel for schedule(static) if (s.n * (na + nb) >= kParallelMinElements)
  for (int i = 0; i < s.n; ++i) {
    if (da) std::memcpy(da + i * na, dy + i * (na + nb), na * sizeof(float));
    if (db) std::memcpy(db + i * nb, dy + i * (na + nb) + na, nb * sizeof(float));
  }
}

}  // namespace isonet::cpu
