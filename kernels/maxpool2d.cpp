// maxpool2d.cpp: CPU twin of 2x2/stride-2 max pooling (floor semantics) and its scatter backward.
// One OpenMP task per (image, channel) plane; the window rule (first max in raster order, NaN
// wins) lives in one place, pool_window(), mirrored by the CUDA kernel.
#include "kernels/maxpool2d.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu_parallel.h"
#include "kernels/op_checks.h"

namespace isonet::cpu {

namespace {
// Max of the 2x2 window whose top-left corner is (2i, 2j) in plane x [h,w]. Candidates are visited
// in raster order and replace the best only when strictly greater, so ties keep the first; a NaN
// replaces a number and is never replaced, so NaN propagates. Returns the value, sets *arg.
inline float pool_window(const float* x, int w, int i, int j, int32_t* arg) {
  const int r0 = 2 * i * w + 2 * j;
  const int idx[4] = {r0, r0 + 1, r0 + w, r0 + w + 1};
  float best = x[idx[0]];
  int32_t best_i = idx[0];
  for (int t = 1; t < 4; ++t) {
    float v = x[idx[t]];
    if (!std::isnan(best) && (std::isnan(v) || v > best)) {
      best = v;
      best_i = idx[t];
    }
  }
  *arg = best_i;
  return best;
}
}  // namespace

void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) {
  const char* op = "maxpool2d_forward";
  check_pool2d_shape(s, op);
  check_not_null(x, op, "x");
  check_not_null(y, op, "y");
  check_not_null(argmax, op, "argmax");
  const int oh = s.out_h(), ow = s.out_w();
  const long planes = static_cast<long>(s.n) * s.c;
  const size_t in_plane = static_cast<size_t>(s.h) * s.w, out_plane = static_cast<size_t>(oh) * ow;
#pragma omp parallel for schedule(static) if (planes * in_plane >= kParallelMinElements)
  for (long p = 0; p < planes; ++p) {
    const float* xp = x + p * in_plane;   // [h,w]
    float* yp = y + p * out_plane;        // [oh,ow]
    int32_t* ap = argmax + p * out_plane;  // [oh,ow]
    for (int i = 0; i < oh; ++i)
      for (int j = 0; j < ow; ++j) yp[i * ow + j] = pool_window(xp, s.w, i, j, &ap[i * ow + j]);
  }
}

void maxpool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx) {
  const char* op = "maxpool2d_backward";
  check_pool2d_shape(s, op);
  check_not_null(dy, op, "dy");
  check_not_null(argmax, op, "argmax");
  check_not_null(dx, op, "dx");
  const long planes = static_cast<long>(s.n) * s.c;
  const size_t in_plane = static_cast<size_t>(s.h) * s.w, out_plane = static_cast<size_t>(s.out_h()) * s.out_w();
#pragma omp parallel for schedule(static) if (planes * in_plane >= kParallelMinElements)
  for (long p = 0; p < planes; ++p) {
    float* dxp = dx + p * in_plane;  // [h,w]
    const float* dyp = dy + p * out_plane;
    const int32_t* ap = argmax + p * out_plane;
    std::memset(dxp, 0, in_plane * sizeof(float));
    // Windows do not overlap (stride 2 = size 2), so each input gets at most one gradient.
    for (size_t o = 0; o < out_plane; ++o) dxp[ap[o]] = dyp[o];
  }
}

}  // namespace isonet::cpu
