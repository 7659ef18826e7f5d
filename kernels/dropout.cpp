// dropout.cpp: CPU twin of inverted dropout. The mask is recomputed from (seed, step, index) with
// the same rule as dropout_keep() (rng.h), so forward, backward and the CUDA kernels agree bit for bit.
#include "kernels/dropout.h"

#include "kernels/cpu_parallel.h"
#include "kernels/op_checks.h"
#include "kernels/rng.h"

namespace isonet::cpu {

namespace {
// out[i] = keep(i) ? in[i] * scale : 0. Forward and backward are the same masked scaling.
void apply_mask(const DropoutParams& d, const float* in, float* out, size_t count, const char* op) {
  check_dropout_params(d, op);
  if (count == 0) return;  // empty tensors may carry null pointers
  check_not_null(in, op, "input");
  check_not_null(out, op, "output");
  const uint32_t threshold = dropout_threshold(d.p);
  const float scale = dropout_scale(d);
  const uint64_t step = d.step + (d.step_offset ? *d.step_offset : 0);  // host memory is the CPU's device memory
  const long n = static_cast<long>(count);
#pragma omp parallel for schedule(static) if (count >= kParallelMinElements)
  for (long i = 0; i < n; ++i)
    out[i] = counter_random_u32(d.seed, step, static_cast<uint64_t>(i)) >= threshold ? in[i] * scale : 0.f;
}
}  // namespace

void dropout_forward(const DropoutParams& d, const float* x, float* y, size_t count) {
  apply_mask(d, x, y, count, "dropout_forward");
}

void dropout_backward(const DropoutParams& d, const float* dy, float* dx, size_t count) {
  apply_mask(d, dy, dx, count, "dropout_backward");
}

}  // namespace isonet::cpu
