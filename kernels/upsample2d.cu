// upsample2d.cu: CUDA kernels for 2x nearest-neighbour upsampling and its backward (2x2 block
// sums, added in the CPU twin's order (r0[0]+r0[1]) + (r1[0]+r1[1]), so results match exactly).
// One thread per output element of each direction: every element is written exactly once.
#include "kernels/upsample2d.h"

#include "kernels/cuda_launch.h"
#include "kernels/op_checks.h"

namespace isonet::gpu {

namespace {
// x [planes,h,w] -> y [planes,2h,2w]
__global__ void upsample_forward_kernel(const float* x, float* y, size_t planes, int h, int w) {
  const int ow = 2 * w;
  const size_t in_plane = static_cast<size_t>(h) * w, out_plane = 4 * in_plane;
  detail::grid_stride(planes * out_plane, [&](size_t o) {
    const size_t p = o / out_plane;
    const int r = static_cast<int>(o - p * out_plane);
    const int row = r / ow, col = r - row * ow;
    y[o] = x[p * in_plane + static_cast<size_t>(row / 2) * w + col / 2];
  });
}

// dy [planes,2h,2w] -> dx [planes,h,w]
__global__ void upsample_backward_kernel(const float* dy, float* dx, size_t planes, int h, int w) {
  const int ow = 2 * w;
  const size_t in_plane = static_cast<size_t>(h) * w, out_plane = 4 * in_plane;
  detail::grid_stride(planes * in_plane, [&](size_t e) {
    const size_t p = e / in_plane;
    const int r = static_cast<int>(e - p * in_plane);
    const int i = r / w, j = r - i * w;
    const float* r0 = dy + p * out_plane + static_cast<size_t>(2 * i) * ow;
    const float* r1 = r0 + ow;
    dx[e] = (r0[2 * j] + r0[2 * j + 1]) + (r1[2 * j] + r1[2 * j + 1]);
  });
}
}  // namespace

void upsample2d_forward(const Upsample2dShape& s, const float* x, float* y, cudaStream_t stream) {
  const char* op = "upsample2d_forward (cuda)";
  check_upsample2d_shape(s, op);
  check_not_null(x, op, "x");
  check_not_null(y, op, "y");
  const size_t planes = static_cast<size_t>(s.n) * s.c;
  upsample_forward_kernel<<<detail::grid_for(planes * 4 * s.h * s.w), detail::kBlock, 0, stream>>>(x, y, planes,
                                                                                                   s.h, s.w);
  CUDA_CHECK_LAUNCH(op);
}

void upsample2d_backward(const Upsample2dShape& s, const float* dy, float* dx, cudaStream_t stream) {
  const char* op = "upsample2d_backward (cuda)";
  check_upsample2d_shape(s, op);
  check_not_null(dy, op, "dy");
  check_not_null(dx, op, "dx");
  const size_t planes = static_cast<size_t>(s.n) * s.c;
  upsample_backward_kernel<<<detail::grid_for(planes * s.h * s.w), detail::kBlock, 0, stream>>>(dy, dx, planes,
                                                                                                s.h, s.w);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace isonet::gpu
