// maxpool2d.h: 2x2 max pooling, stride 2, floor semantics (an odd last row/column is dropped, as
// in PyTorch and Keras 'valid'). The forward records the argmax so the backward is a scatter.
// Ties go to the first maximum in raster order (dy, dx) = (0,0), (0,1), (1,0), (1,1); a NaN in a
// window is propagated (it wins), so NaN inputs are never silently hidden.
#pragma once
#include <cstdint>

#include "kernels/stream.h"

namespace isonet {

struct Pool2dShape {
  int n = 1, c = 1;
  int h = 1, w = 1;  // input size; output is [h/2, w/2]
  int out_h() const { return h / 2; }
  int out_w() const { return w / 2; }
};

// Throws isonet::Error naming `op` unless n, c >= 1 and h, w >= 2 (so the output is non-empty).
// Shared by the CPU and CUDA entries (defined in op_checks.cpp).
void check_pool2d_shape(const Pool2dShape& s, const char* op);

namespace cpu {
// x [n,c,h,w] -> y [n,c,h/2,w/2], argmax [n,c,h/2,w/2] = index (row*w+col) inside x's plane.
void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax);
// dy [n,c,h/2,w/2], argmax -> dx [n,c,h,w] (overwritten; zero except at the maxima).
void maxpool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx);
}  // namespace cpu

namespace gpu {
void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax, cudaStream_t stream);
void maxpool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx,
                        cudaStream_t stream);
}  // namespace gpu

}  // namespace isonet
