// conv2d.h: 2D convolution, stride 1, odd square kernel, 'same' zero padding (k/2), with bias.
// CPU twin in conv2d.cpp: spatial paths (direct AVX2 kernels in conv2d_direct.cpp for k = 3, 5, 7;
// im2col + OpenBLAS sgemm otherwise) and the frequency-domain path (FFTW, conv2d_fft.cpp), chosen
// per call by Conv2dShape::algo. CUDA kernels in conv2d.cu (and conv2d_fft.cu).
// This is cross-correlation, as in PyTorch/Keras: y[o,i,j] = b[o] + sum_c,u,v w[o,c,u,v] x[c,i+u-k/2,j+v-k/2].
#pragma once
#include <cstddef>

#include "kernels/stream.h"

namespace isonet {

// Which algorithm computes the convolution (same result up to rounding; see conv2d_fft.h).
//   Auto:   the implementation picks (CPU: the FFT cost model of conv2d_fft.h; CUDA: direct, until
//           the CUDA FFT path has been verified and benchmarked on a GPU).
//   Direct: spatial loops (CPU: AVX2 direct kernels or im2col + sgemm; CUDA: the direct kernels).
//   Fft:    frequency domain (conv2d_fft.h); forward and backward-data on both devices, backward
//           weights on the CPU (the CUDA backward weights is always direct).
enum class Conv2dAlgo { Auto, Direct, Fft };

// The arithmetic of the CUDA direct convolution kernels (PyTorch's allow_tf32, per call):
//   Fp32: FFMA in fp32 throughout (the default; within fp32 summation-order error of the CPU).
//   Tf32: tensor cores (mma.sync m16n8k8 .tf32, conv2d_tf32.cu): the operands (x, dy, weights)
//         are rounded to TF32 (10-bit mantissa, round to nearest, ties away from zero) as they are
//         staged, the products are summed in fp32. Relative error ~1e-3 of sum |terms| instead of
//         ~1e-7. Forward and backward data for k <= 13, backward weights for k <= 9; other sizes
//         and dbias stay fp32. With Conv2dAlgo::Fft, forward and backward data are the (fp32)
//         FFT path and backward weights, always a direct kernel, follows the math. GPUs before
//         compute capability 8.0 (no TF32 tensor cores) run fp32 (logged once per device).
// The CPU ignores it and always computes in fp32 (as PyTorch's CPU convolutions do).
enum class Conv2dMath { Fp32, Tf32 };

struct Conv2dShape {
  int n = 1;      // batch
  int c_in = 1;   // input channels
  int c_out = 1;  // output channels
  int h = 1, w = 1;  // spatial size (input == output)
  int k = 1;      // kernel size, odd
  Conv2dAlgo algo = Conv2dAlgo::Auto;
  Conv2dMath math = Conv2dMath::Fp32;  // CUDA only (see Conv2dMath)
};

// Throws isonet::Error naming `op` when the shape is invalid (non-positive sizes, even k).
void check_conv2d_shape(const Conv2dShape& s, const char* op);

namespace cpu {
// Threading: each CPU conv call runs one OpenMP team of omp_get_max_threads() threads, as seen by
// the first call of any function below (fixed from then on, so a workspace sized earlier stays
// valid). Its GEMMs run single-threaded inside that team: a call that uses sgemm (1x1, or builds
// without AVX2) sets OpenBLAS to 1 thread for the process.
// Floats of scratch memory the CPU conv functions need for shape s, for the algorithm they will
// use (s.algo; Auto: conv2d_fft_preferred(s)). The FFT path needs much more (the spectra of all
// n*c_in + n*c_out + c_in*c_out planes, ~5-6 bytes per padded pixel each: 165 MB for IsoNet-2's
// dec1 at a batch of 16 x 128^2) than the direct one (a few MB).
size_t conv2d_workspace_floats(const Conv2dShape& s);
// x [n,c_in,h,w], weight [c_out,c_in,k,k], bias [c_out] or nullptr -> y [n,c_out,h,w] (overwritten).
// fuse_relu applies max(0, .) in the epilogue.
void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                    bool fuse_relu, float* workspace);
// dy [n,c_out,h,w], weight [c_out,c_in,k,k] -> dx [n,c_in,h,w] (overwritten).
void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx,
                          float* workspace);
// x [n,c_in,h,w], dy [n,c_out,h,w] -> dweight [c_out,c_in,k,k], dbias [c_out] or nullptr
// (both overwritten, summed over the batch).
void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight, float* dbias,
                             float* workspace);
}  // namespace cpu

namespace gpu {
// Same contracts as the CPU twins; pointers are device memory; work is queued on `stream`.
size_t conv2d_workspace_floats(const Conv2dShape& s);
void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                    bool fuse_relu, float* workspace, cudaStream_t stream);
void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx,
                          float* workspace, cudaStream_t stream);
void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight, float* dbias,
                             float* workspace, cudaStream_t stream);
}  // namespace gpu

}  // namespace isonet
