// dropout.cu: CUDA kernels for inverted dropout. The mask comes from counter_random_u32 keyed on
// (seed, step, element index) with the host-computed integer threshold, exactly as the CPU twin and
// dropout_keep() do, and the kept value is the same single multiply by dropout_scale(): the GPU
// output is bit-identical to the CPU's. The backward recomputes the mask instead of storing it.
#include "kernels/dropout.h"

#include "kernels/cuda_launch.h"
#include "kernels/op_checks.h"
#include "kernels/rng.h"

namespace isonet::gpu {

namespace {
// out [count] = keep(i) ? in * scale : 0; out may alias in. step_offset: device memory or null.
__global__ void dropout_kernel(const float* in, float* out, size_t count, uint64_t seed, uint64_t step,
                               const uint64_t* step_offset, uint32_t threshold, float scale, bool vec4) {
  if (step_offset) step += *step_offset;
  detail::elementwise(count, vec4, [&](size_t i, auto width) {
    constexpr int W = decltype(width)::value;
    auto p = detail::load_pack<W>(in + i);
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const bool keep = counter_random_u32(seed, step, static_cast<uint64_t>(i + j)) >= threshold;
      p.v[j] = keep ? __fmul_rn(p.v[j], scale) : 0.f;
    }
    detail::store_pack<W>(out + i, p);
  });
}

void apply_mask(const DropoutParams& d, const float* in, float* out, size_t count, cudaStream_t stream,
                const char* op) {
  check_dropout_params(d, op);
  if (count == 0) return;  // empty tensors may carry null pointers
  check_not_null(in, op, "input");
  check_not_null(out, op, "output");
  const bool vec4 = detail::aligned16(in) && detail::aligned16(out);
  dropout_kernel<<<detail::grid_for_elementwise(count), detail::kBlock, 0, stream>>>(
      in, out, count, d.seed, d.step, d.step_offset, dropout_threshold(d.p), dropout_scale(d), vec4);
  CUDA_CHECK_LAUNCH(op);
}
}  // namespace

void dropout_forward(const DropoutParams& d, const float* x, float* y, size_t count, cudaStream_t stream) {
  apply_mask(d, x, y, count, stream, "dropout_forward (cuda)");
}

void dropout_backward(const DropoutParams& d, const float* dy, float* dx, size_t count, cudaStream_t stream) {
  apply_mask(d, dy, dx, count, stream, "dropout_backward (cuda)");
}

}  // namespace isonet::gpu
