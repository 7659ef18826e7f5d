// concat.h: concatenation along channels (U-Net skip connections) and its backward (a split).
#pragma once
#include "kernels/stream.h"

namespace isonet {

struct ConcatShape {
  int n = 1;
  int c_a = 1, c_b = 1;  // channels of the two inputs; output has c_a + c_b
  int h = 1, w = 1;
};

// Throws isonet::Error naming `op` unless every size is >= 1 (shared by CPU and CUDA entries).
void check_concat_shape(const ConcatShape& s, const char* op);

namespace cpu {
// a [n,c_a,h,w], b [n,c_b,h,w] -> y [n,c_a+c_b,h,w]
void concat_forward(const ConcatShape& s, const float* a, const float* b, float* y);
// dy [n,c_a+c_b,h,w] -> da [n,c_a,h,w], db [n,c_b,h,w] (overwritten; either may be nullptr)
void concat_backward(const ConcatShape& s, const float* dy, float* da, float* db);
}  // namespace cpu

namespace gpu {
void concat_forward(const ConcatShape& s, const float* a, const float* b, float* y, cudaStream_t stream);
void concat_backward(const ConcatShape& s, const float* dy, float* da, float* db, cudaStream_t stream);
}  // namespace gpu

}  // namespace isonet
