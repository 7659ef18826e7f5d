// relu.h: ReLU and its backward. The backward uses the forward's output (y > 0), which is what
// the conv epilogue with fused ReLU leaves behind, so no pre-activation copy is kept.
#pragma once
#include <cstddef>

#include "kernels/stream.h"

namespace isonet {

namespace cpu {
// y[i] = max(0, x[i]); y may alias x. NaN stays NaN.
void relu_forward(const float* x, float* y, size_t count);
// dx[i] = y[i] > 0 ? dy[i] : 0; dx may alias dy.
void relu_backward(const float* dy, const float* y, float* dx, size_t count);
}  // namespace cpu

namespace gpu {
void relu_forward(const float* x, float* y, size_t count, cudaStream_t stream);
void relu_backward(const float* dy, const float* y, float* dx, size_t count, cudaStream_t stream);
}  // namespace gpu

}  // namespace isonet
