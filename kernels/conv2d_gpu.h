// conv2d_gpu.h: what the CUDA convolution files share (.cu files only): the split-K reduction of
// conv2d.cu and the TF32 tensor-core forward/backward-data path of conv2d_tf32.cu, which
// conv2d.cu's dispatch calls for Conv2dMath::Tf32.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/conv2d_gpu_math.h"

namespace isonet::gpu {

// out [n,cout,h,w] = epilogue(sum over the splits, in order, of partial [splits][n,cout,h,w]).
void launch_conv_split_reduce(const ConvArgs& a, const float* partial, int splits, size_t out_floats,
                              cudaStream_t stream, const char* op);

// The TF32 tensor-core convolution "in [n,cin,h,w] -> out [n,cout,h,w]" (a.k odd): true when the
// shape fits its shared memory (k <= 19), else the caller uses the fp32 kernels.
bool conv_tf32_supported(int n, int cin, int cout, int h, int w, int k);
// Workspace floats it needs (split-K partial outputs; 0 when it does not split).
size_t conv_tf32_workspace_floats(int n, int cin, int cout, int h, int w, int k);
// Runs it; FLIP: backward data (see conv_weight). Requires conv_tf32_supported.
template <bool FLIP>
void run_conv_tf32(const ConvArgs& a, float* workspace, cudaStream_t stream, const char* op);

}  // namespace isonet::gpu
