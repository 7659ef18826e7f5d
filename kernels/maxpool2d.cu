// maxpool2d.cu: CUDA kernels for 2x2/stride-2 max pooling (floor semantics) with argmax, and its
// backward. The window rule is the CPU twin's (maxpool2d.cpp, pool_window): candidates in raster
// order replace the best only when strictly greater (ties keep the first) and a NaN replaces a
// number and is never replaced, so y and argmax match the CPU exactly.
// The backward is a gather: one thread per INPUT element reads the argmax of its (only) window, so
// every dx element is written exactly once, without atomics or a separate zero fill.
#include "kernels/maxpool2d.h"

#include "kernels/cuda_launch.h"
#include "kernels/op_checks.h"

namespace isonet::gpu {

namespace {
// x [planes,h,w] -> y, argmax [planes,oh,ow]; argmax is row*w+col inside x's plane.
__global__ void maxpool_forward_kernel(const float* x, float* y, int32_t* argmax, size_t planes, int h, int w) {
  const int oh = h / 2, ow = w / 2;
  const size_t out_plane = static_cast<size_t>(oh) * ow, in_plane = static_cast<size_t>(h) * w;
  detail::grid_stride(planes * out_plane, [&](size_t o) {
    const size_t p = o / out_plane;
    const int r = static_cast<int>(o - p * out_plane);
    const int i = r / ow, j = r - i * ow;
    const float* xp = x + p * in_plane;  // [h,w]
    const int r0 = 2 * i * w + 2 * j;
    const int idx[4] = {r0, r0 + 1, r0 + w, r0 + w + 1};
    float best = xp[idx[0]];
    int32_t best_i = idx[0];
#pragma unroll
    for (int t = 1; t < 4; ++t) {
      const float v = xp[idx[t]];
      if (!isnan(best) && (isnan(v) || v > best)) {
        best = v;
        best_i = idx[t];
      }
    }
    y[o] = best;
    argmax[o] = best_i;
  });
}

// dy, argmax [planes,oh,ow] -> dx [planes,h,w]: dx = dy of the window where this element was the
// argmax, else 0 (also for the dropped odd last row/column).
__global__ void maxpool_backward_kernel(const float* dy, const int32_t* argmax, float* dx, size_t planes, int h,
                                        int w) {
  const int oh = h / 2, ow = w / 2;
  const size_t out_plane = static_cast<size_t>(oh) * ow, in_plane = static_cast<size_t>(h) * w;
  detail::grid_stride(planes * in_plane, [&](size_t e) {
    const size_t p = e / in_plane;
    const int r = static_cast<int>(e - p * in_plane);
    const int row = r / w, col = r - row * w;
    const int i = row / 2, j = col / 2;
    float g = 0.f;
    if (i < oh && j < ow) {
      const size_t o = p * out_plane + static_cast<size_t>(i) * ow + j;
      if (argmax[o] == r) g = dy[o];
    }
    dx[e] = g;
  });
}
}  // namespace

void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax, cudaStream_t stream) {
  const char* op = "maxpool2d_forward (cuda)";
  check_pool2d_shape(s, op);
  check_not_null(x, op, "x");
  check_not_null(y, op, "y");
  check_not_null(argmax, op, "argmax");
  const size_t planes = static_cast<size_t>(s.n) * s.c;
  const size_t outputs = planes * s.out_h() * s.out_w();
  maxpool_forward_kernel<<<detail::grid_for(outputs), detail::kBlock, 0, stream>>>(x, y, argmax, planes, s.h, s.w);
  CUDA_CHECK_LAUNCH(op);
}

void maxpool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx,
                        cudaStream_t stream) {
  const char* op = "maxpool2d_backward (cuda)";
  check_pool2d_shape(s, op);
  check_not_null(dy, op, "dy");
  check_not_null(argmax, op, "argmax");
  check_not_null(dx, op, "dx");
  const size_t planes = static_cast<size_t>(s.n) * s.c;
  const size_t inputs = planes * s.h * s.w;
  maxpool_backward_kernel<<<detail::grid_for(inputs), detail::kBlock, 0, stream>>>(dy, argmax, dx, planes, s.h,
                                                                                     s.w);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace isonet::gpu
