// conv2d_gpu.h: what the CUDA convolution files share (.cu files only): the split-K and dW
// reductions of conv2d.cu and the TF32 tensor-core kernels of conv2d_tf32.cu (forward, backward
// data, backward weights), which conv2d.cu's dispatch calls for Conv2dMath::Tf32.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>

#include "kernels/conv2d_gpu_math.h"

namespace isonet::gpu {

// out [n,cout,h,w] = epilogue(sum over the splits, in order, of partial [splits][n,cout,h,w]).
void launch_conv_split_reduce(const ConvArgs& a, const float* partial, int splits, size_t out_floats,
                              cudaStream_t stream, const char* op);

// One mma.sync.m16n8k8.tf32 tile through the fragment maps the TF32 kernels use (one warp):
// a [16][8], b [8][8] (row-major, device memory) -> c [16][8] = tf32(a) * tf32(b). For the GPU test
// that checks those maps against the hardware directly (tests/test_cuda_conv_tf32.cpp).
void tf32_mma_probe(const float* a, const float* b, float* c, cudaStream_t stream);

// True when the current GPU has TF32 tensor cores (compute capability 8.0+; logs once per device
// when not), and without a GPU (memory planning prices a device that has them). Conv2dMath::Tf32
// runs the fp32 kernels where this is false.
bool tf32_device_supported();

// Opts the TF32 kernels into the shared memory they need, once per device (needs a GPU; must run
// before the first TF32 launch and outside CUDA graph captures: conv2d_workspace_floats does it).
void conv_tf32_prepare_device(const char* op);

// The TF32 tensor-core convolution "in [n,cin,h,w] -> out [n,cout,h,w]" (a.k odd): true when the
// shape fits its shared memory (k <= 13), else the caller uses the fp32 kernels.
bool conv_tf32_supported(int n, int cin, int cout, int h, int w, int k);
// Workspace floats it needs (split-K partial outputs; 0 when it does not split).
size_t conv_tf32_workspace_floats(int n, int cin, int cout, int h, int w, int k);
// Runs it; FLIP: backward data (see conv_weight). Requires conv_tf32_supported.
template <bool FLIP>
void run_conv_tf32(const ConvArgs& a, float* workspace, cudaStream_t stream, const char* op);

// The TF32 backward weights: x [n,cin,h,w], dy [n,cout,h,w] -> raw partial sums
// partial [partials][cout][cin][k][k], to be added in order by launch_conv_wgrad_reduce.
// Supported for k in {1,3,5,7,9}; _partials is the count it writes (0: unsupported, use the fp32
// kernels), the workspace it needs is partials * cout * cin * k * k floats.
int conv_wgrad_tf32_partials(int n, int cin, int cout, int h, int w, int k);
int run_conv_wgrad_tf32(const float* x, const float* dy, float* partial, int n, int cin, int cout, int h, int w,
                        int k, cudaStream_t stream, const char* op);

// dweight [dw] = sum over p = 0 .. partials-1 (a fixed order) of partial [p][dw] (conv2d.cu).
void launch_conv_wgrad_reduce(const float* partial, float* dweight, size_t dw, int partials, cudaStream_t stream,
                              const char* op);

}  // namespace isonet::gpu
