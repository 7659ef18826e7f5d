// add.cpp: CPU twin of the elementwise add (residual connection) and gradient accumulation.
#include "kernels/add.h"

#include "kernels/cpu_parallel.h"
#include "kernels/op_checks.h"

namespace isonet::cpu {

void add_forward(const float* a, const float* b, float* y, size_t count) {
  if (count == 0) return;  // empty tensors may carry null pointers
  const char* op = "add_forward";
  check_not_null(a, op, "a");
  check_not_null(b, op, "b");
  check_not_null(y, op, "y");
  const long n = static_cast<long>(count);
#pragma omp parallel for simd schedule(static) if (count >= kParallelMinElements)
  for (long i = 0; i < n; ++i) y[i] = a[i] + b[i];
}

void add_accumulate(const float* x, float* y, size_t count) {
  if (count == 0) return;
  const char* op = "add_accumulate";
  check_not_null(x, op, "x");
  check_not_null(y, op, "y");
  const long n = static_cast<long>(count);
#pragma omp parallel for simd schedule(static) if (count >= kParallelMinElements)
  for (long i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace isonet::cpu
