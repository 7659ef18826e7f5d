// adam.cu: one fused CUDA kernel for the Adam update over a flat parameter array (adam.h: PyTorch's
// epsilon convention). The per-step scalars come from adam_step_scalars() on the host, in double,
// shared with the CPU twin: as kernel arguments (adam_update) or from device memory when the kernel
// runs (adam_update_scalars, for CUDA graphs). float4 when all four arrays are 16-byte aligned.
#include "kernels/adam.h"

#include "kernels/cuda_launch.h"
#include "kernels/op_checks.h"

namespace isonet::gpu {

namespace {
struct AdamArgs {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
  AdamStepScalars sc;                // the step's scalars, unless sc_ptr is set
  const AdamStepScalars* sc_ptr;     // device memory, read when the kernel runs (adam_update_scalars)
};

// param, grad, m, v [count]: m, v updated in place, then param -= step_size * m / (sqrt(v) * inv_sqrt_bc2 + eps).
__global__ void adam_kernel(AdamArgs a, float* param, const float* grad, float* m, float* v, size_t count,
                            bool vec4) {
  if (a.sc_ptr) a.sc = *a.sc_ptr;
  detail::elementwise(count, vec4, [&](size_t i, auto width) {
    constexpr int W = decltype(width)::value;
    auto p = detail::load_pack<W>(param + i);
    const auto g = detail::load_pack<W>(grad + i);
    auto mi = detail::load_pack<W>(m + i);
    auto vi = detail::load_pack<W>(v + i);
#pragma unroll
    for (int j = 0; j < W; ++j) {
      const float gj = g.v[j];
      mi.v[j] = a.beta1 * mi.v[j] + a.one_minus_beta1 * gj;
      vi.v[j] = a.beta2 * vi.v[j] + a.one_minus_beta2 * gj * gj;
      p.v[j] -= a.sc.step_size * mi.v[j] / (sqrtf(vi.v[j]) * a.sc.inv_sqrt_bc2 + a.eps);
    }
    detail::store_pack<W>(m + i, mi);
    detail::store_pack<W>(v + i, vi);
    detail::store_pack<W>(param + i, p);
  });
}

void launch(const AdamParams& a, AdamStepScalars sc, const AdamStepScalars* sc_ptr, float* param, const float* grad,
            float* m, float* v, size_t count, cudaStream_t stream, const char* op) {
  if (count == 0) return;
  check_not_null(param, op, "param");
  check_not_null(grad, op, "grad");
  check_not_null(m, op, "m");
  check_not_null(v, op, "v");
  const AdamArgs args{a.beta1, a.beta2, 1.f - a.beta1, 1.f - a.beta2, a.eps, sc, sc_ptr};
  const bool vec4 = detail::aligned16(param) && detail::aligned16(grad) && detail::aligned16(m) &&
                    detail::aligned16(v);
  adam_kernel<<<detail::grid_for_elementwise(count), detail::kBlock, 0, stream>>>(args, param, grad, m, v, count,
                                                                                   vec4);
  CUDA_CHECK_LAUNCH(op);
}
}  // namespace

void adam_update(const AdamParams& a, long step, float* param, const float* grad, float* m, float* v, size_t count,
                 cudaStream_t stream) {
  // validates a and step
  launch(a, adam_step_scalars(a, step), nullptr, param, grad, m, v, count, stream, "adam_update (cuda)");
}

void adam_update_scalars(const AdamParams& a, const AdamStepScalars* scalars, float* param, const float* grad,
                         float* m, float* v, size_t count, cudaStream_t stream) {
  const char* op = "adam_update_scalars (cuda)";
  adam_step_scalars(a, 1);  // validates a
  check_not_null(scalars, op, "scalars");
  launch(a, AdamStepScalars{}, scalars, param, grad, m, v, count, stream, op);
}

}  // namespace isonet::gpu
