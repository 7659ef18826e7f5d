// upsample2d.h: 2x nearest-neighbour upsampling (Keras UpSampling2D, PyTorch Upsample(nearest)).
// The backward sums each 2x2 block of the output gradient.
#pragma once
#include "kernels/stream.h"

namespace isonet {

struct Upsample2dShape {
  int n = 1, c = 1;
  int h = 1, w = 1;  // input size; output is [2h, 2w]
};

// Throws isonet::Error naming `op` unless every size is >= 1 (shared by CPU and CUDA entries).
void check_upsample2d_shape(const Upsample2dShape& s, const char* op);

namespace cpu {
// x [n,c,h,w] -> y [n,c,2h,2w]
void upsample2d_forward(const Upsample2dShape& s, const float* x, float* y);
// dy [n,c,2h,2w] -> dx [n,c,h,w] (overwritten)
void upsample2d_backward(const Upsample2dShape& s, const float* dy, float* dx);
}  // namespace cpu

namespace gpu {
void upsample2d_forward(const Upsample2dShape& s, const float* x, float* y, cudaStream_t stream);
void upsample2d_backward(const Upsample2dShape& s, const float* dy, float* dx, cudaStream_t stream);
}  // namespace gpu

}  // namespace isonet
