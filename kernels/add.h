// add.h: elementwise add (the residual connection) and accumulate (summing gradients that meet
// at a fork). The backward of y = a + b passes dy unchanged to both inputs, so it needs no kernel.
#pragma once
#include <cstddef>

#include "kernels/stream.h"

namespace isonet {

namespace cpu {
// y[i] = a[i] + b[i]; y may alias a or b.
void add_forward(const float* a, const float* b, float* y, size_t count);
// y[i] += x[i]
void add_accumulate(const float* x, float* y, size_t count);
}  // namespace cpu

namespace gpu {
void add_forward(const float* a, const float* b, float* y, size_t count, cudaStream_t stream);
void add_accumulate(const float* x, float* y, size_t count, cudaStream_t stream);
}  // namespace gpu

}  // namespace isonet
