// add.cu: CUDA kernels for the elementwise add (residual connection) and gradient accumulation.
// Memory bound: float4 accesses when every pointer is 16-byte aligned, scalar tail otherwise.
#include "kernels/add.h"

#include "kernels/cuda_launch.h"
#include "kernels/op_checks.h"

namespace isonet::gpu {

namespace {
// y [count] = a + b; y may alias a or b (each index is read and written by one thread).
__global__ void add_kernel(const float* a, const float* b, float* y, size_t count, bool vec4) {
  detail::elementwise(count, vec4, [&](size_t i, auto width) {
    constexpr int W = decltype(width)::value;
    auto pa = detail::load_pack<W>(a + i);
    const auto pb = detail::load_pack<W>(b + i);
#pragma unroll
    for (int j = 0; j < W; ++j) pa.v[j] += pb.v[j];
    detail::store_pack<W>(y + i, pa);
  });
}
}  // namespace

void add_forward(const float* a, const float* b, float* y, size_t count, cudaStream_t stream) {
  if (count == 0) return;  // empty tensors may carry null pointers
  const char* op = "add_forward (cuda)";
  check_not_null(a, op, "a");
  check_not_null(b, op, "b");
  check_not_null(y, op, "y");
  const bool vec4 = detail::aligned16(a) && detail::aligned16(b) && detail::aligned16(y);
  add_kernel<<<detail::grid_for_elementwise(count), detail::kBlock, 0, stream>>>(a, b, y, count, vec4);
  CUDA_CHECK_LAUNCH(op);
}

void add_accumulate(const float* x, float* y, size_t count, cudaStream_t stream) {
  if (count == 0) return;
  const char* op = "add_accumulate (cuda)";
  check_not_null(x, op, "x");
  check_not_null(y, op, "y");
  // y += x is y = y + x with the output aliasing the first input.
  const bool vec4 = detail::aligned16(x) && detail::aligned16(y);
  add_kernel<<<detail::grid_for_elementwise(count), detail::kBlock, 0, stream>>>(y, x, y, count, vec4);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace isonet::gpu
