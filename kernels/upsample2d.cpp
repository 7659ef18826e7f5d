// upsample2d.cpp: CPU twin of 2x nearest-neighbour upsampling and its backward (2x2 block sums).
#include "kernels/upsample2d.h"

#include <cstddef>

#include "kernels/cpu_parallel.h"
#include "kernels/op_checks.h"

namespace isonet::cpu {

void upsample2d_forward(const Upsample2dShape& s, const float* x, float* y) {
  const char* op = "upsample2d_forward";
  check_upsample2d_shape(s, op);
  check_not_null(x, op, "x");
  check_not_null(y, op, "y");
  const long planes = static_cast<long>(s.n) * s.c;
  const int w = s.w, ow = 2 * s.w;
  const size_t in_plane = static_cast<size_t>(s.h) * w, out_plane = 4 * in_plane;
#pragma omp parallel for schedule(static) if (planes * in_plane >= kParallelMinElements)
  for (long p = 0; p < planes; ++p) {
    const float* xp = x + p * in_plane;  // [h,w]
    float* yp = y + p * out_plane;       // [2h,2w]
    for (int i = 0; i < s.h; ++i) {
      float* row = yp + static_cast<size_t>(2 * i) * ow;
      for (int j = 0; j < w; ++j) row[2 * j] = row[2 * j + 1] = xp[static_cast<size_t>(i) * w + j];
      for (int j = 0; j < ow; ++j) row[ow + j] = row[j];  // the second output row repeats the first
    }
  }
}

void upsample2d_backward(const Upsample2dShape& s, const float* dy, float* dx) {
  const char* op = "upsample2d_backward";
  check_upsample2d_shape(s, op);
  check_not_null(dy, op, "dy");
  check_not_null(dx, op, "dx");
  const long planes = static_cast<long>(s.n) * s.c;
  const int w = s.w, ow = 2 * s.w;
  const size_t in_plane = static_cast<size_t>(s.h) * w, out_plane = 4 * in_plane;
#pragma omp parallel for schedule(static) if (planes * in_plane >= kParallelMinElements)
  for (long p = 0; p < planes; ++p) {
    const float* dyp = dy + p * out_plane;  // [2h,2w]
    float* dxp = dx + p * in_plane;         // [h,w]
    for (int i = 0; i < s.h; ++i) {
      const float* r0 = dyp + static_cast<size_t>(2 * i) * ow;
      const float* r1 = r0 + ow;
      for (int j = 0; j < w; ++j)
        dxp[static_cast<size_t>(i) * w + j] = (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
    }
  }
}

}  // namespace isonet::cpu
