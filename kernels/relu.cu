// relu.cu: CUDA kernels for ReLU and its backward, with the CPU twin's NaN rule (NaN stays NaN:
// `x < 0 ? 0 : x`, never fmaxf, which would turn NaN into 0). float4 when aligned.
#include "kernels/relu.h"

#include "kernels/cuda_launch.h"
#include "kernels/op_checks.h"

namespace isonet::gpu {

namespace {
// y [count] = max(0, x); y may alias x.
__global__ void relu_forward_kernel(const float* x, float* y, size_t count, bool vec4) {
  detail::elementwise(count, vec4, [&](size_t i, auto width) {
    constexpr int W = decltype(width)::value;
    auto p = detail::load_pack<W>(x + i);
#pragma unroll
    for (int j = 0; j < W; ++j) p.v[j] = p.v[j] < 0.f ? 0.f : p.v[j];
    detail::store_pack<W>(y + i, p);
  });
}

// dx [count] = y > 0 ? dy : 0; dx may alias dy.
__global__ void relu_backward_kernel(const float* dy, const float* y, float* dx, size_t count, bool vec4) {
  detail::elementwise(count, vec4, [&](size_t i, auto width) {
    constexpr int W = decltype(width)::value;
    auto g = detail::load_pack<W>(dy + i);
    const auto out = detail::load_pack<W>(y + i);
#pragma unroll
    for (int j = 0; j < W; ++j) g.v[j] = out.v[j] > 0.f ? g.v[j] : 0.f;
    detail::store_pack<W>(dx + i, g);
  });
}
}  // namespace

void relu_forward(const float* x, float* y, size_t count, cudaStream_t stream) {
  if (count == 0) return;  // empty tensors may carry null pointers
  const char* op = "relu_forward (cuda)";
  check_not_null(x, op, "x");
  check_not_null(y, op, "y");
  const bool vec4 = detail::aligned16(x) && detail::aligned16(y);
  relu_forward_kernel<<<detail::grid_for_elementwise(count), detail::kBlock, 0, stream>>>(x, y, count, vec4);
  CUDA_CHECK_LAUNCH(op);
}

void relu_backward(const float* dy, const float* y, float* dx, size_t count, cudaStream_t stream) {
  if (count == 0) return;
  const char* op = "relu_backward (cuda)";
  check_not_null(dy, op, "dy");
  check_not_null(y, op, "y");
  check_not_null(dx, op, "dx");
  const bool vec4 = detail::aligned16(dy) && detail::aligned16(y) && detail::aligned16(dx);
  relu_backward_kernel<<<detail::grid_for_elementwise(count), detail::kBlock, 0, stream>>>(dy, y, dx, count, vec4);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace isonet::gpu
