// adam.cpp: CPU twin of the fused Adam update (PyTorch epsilon convention, see adam.h).
#include "kernels/adam.h"

#include <cmath>

#include "kernels/cpu_parallel.h"
#include "kernels/op_checks.h"

namespace isonet::cpu {

namespace {
void update(const AdamParams& a, AdamStepScalars sc, float* param, const float* grad, float* m, float* v,
            size_t count, const char* op) {
  if (count == 0) return;
  check_not_null(param, op, "param");
  check_not_null(grad, op, "grad");
  check_not_null(m, op, "m");
  check_not_null(v, op, "v");
  const float b1 = a.beta1, b2 = a.beta2, one_b1 = 1.f - a.beta1, one_b2 = 1.f - a.beta2, eps = a.eps;
  const long n = static_cast<long>(count);
#pragma omp parallel for simd schedule(static) if (count >= kParallelMinElements)
  for (long i = 0; i < n; ++i) {
    const float g = grad[i];
    const float mi = b1 * m[i] + one_b1 * g;
    const float vi = b2 * v[i] + one_b2 * g * g;
    m[i] = mi;
    v[i] = vi;
    param[i] -= sc.step_size * mi / (std::sqrt(vi) * sc.inv_sqrt_bc2 + eps);
  }
}
}  // namespace

void adam_update(const AdamParams& a, long step, float* param, const float* grad, float* m, float* v, size_t count) {
  update(a, adam_step_scalars(a, step), param, grad, m, v, count, "adam_update");  // validates a and step
}

void adam_update_scalars(const AdamParams& a, const AdamStepScalars* scalars, float* param, const float* grad,
                         float* m, float* v, size_t count) {
  const char* op = "adam_update_scalars";
  adam_step_scalars(a, 1);  // validates a
  check_not_null(scalars, op, "scalars");
  update(a, *scalars, param, grad, m, v, count, op);  // host memory is the CPU's device memory
}

}  // namespace isonet::cpu
