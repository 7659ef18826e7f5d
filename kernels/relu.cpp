// relu.cpp: CPU twin of ReLU and its backward (which reads the forward's output, see relu.h).
#include "kernels/relu.h"

#include "kernels/cpu_parallel.h"
#include "kernels/op_checks.h"

namespace isonet::cpu {

void relu_forward(const float* x, float* y, size_t count) {
  if (count == 0) return;  // empty tensors may carry null pointers
  const char* op = "relu_forward";
  check_not_null(x, op, "x");
  check_not_null(y, op, "y");
  const long n = static_cast<long>(count);
  // `v < 0 ? 0 : v` rather than std::max: NaN < 0 is false, so NaN stays NaN.
#pragma omp parallel for simd schedule(static) if (count >= kParallelMinElements)
  for (long i = 0; i < n; ++i) y[i] = x[i] < 0.f ? 0.f : x[i];
}

void relu_backward(const float* dy, const float* y, float* dx, size_t count) {
  if (count == 0) return;
  const char* op = "relu_backward";
  check_not_null(dy, op, "dy");
  check_not_null(y, op, "y");
  check_not_null(dx, op, "dx");
  const long n = static_cast<long>(count);
#pragma omp parallel for simd schedule(static) if (count >= kParallelMinElements)
  for (long i = 0; i < n; ++i) dx[i] = y[i] > 0.f ? dy[i] : 0.f;
}

}  // namespace isonet::cpu
