// conv2d_fft.h: the 'same' 2D convolution of conv2d.h computed in the frequency domain.
//
// Why: IsoNet-2's 7x7 layers with many channels (96->32, 64->32 at 64x64, 48->16 at 128x128) cost
// 2*n*c_in*c_out*h*w*49 flops directly; on the CPU the direct kernels already run near the FMA
// peak and on the GPU a direct kernel cannot reach cuDNN there (cuDNN switches to FFT tiling).
// In the frequency domain the channel sum becomes one small complex matrix product per frequency
// bin, about k*k/4 times fewer multiply-adds, plus the transforms.
//
// Maths (1D for brevity; 2D is the same per axis). With p = k/2 and a padded length P >= h + p,
// the cross-correlation y[i] = sum_a w[a] x[i+a-p] equals the circular convolution of x (zero
// padded to P) with g[d] = w[p-d] (indices mod P): no wrapped term can reach an output 0 <= i < h
// because |i-u| <= h-1 and g is supported on [-p, p]. Hence, per bin f, with X, G, Y the DFTs:
//   forward:          Y[n,o](f)  = sum_c G[o,c](f) X[n,c](f)
//   backward data:    DX[n,c](f) = sum_o conj(G[o,c](f)) DY[n,o](f)      (correlation with g)
//   backward weights: DG[o,c](f) = sum_n DY[n,o](f) conj(X[n,c](f)),  dw[o,c,a] = dg[o,c](p-a)
// The same padding argument covers all three. Real-to-complex transforms keep P x (P/2+1) bins.
//
// Shapes as in conv2d.h: x [n,c_in,h,w], weight [c_out,c_in,k,k], bias [c_out], y [n,c_out,h,w].
// Results equal the direct convolution up to float rounding of the transforms (relative error
// ~1e-6 of the output's scale for these sizes; the tests state their tolerances).
#pragma once
#include <cstddef>

#include "kernels/conv2d.h"

namespace isonet {

// Padded transform size of shape s: ph >= h + k/2 and pw >= w + k/2, each the smallest number
// >= that bound whose prime factors are 2, 3, 5 and 7 (fast for FFTW and cuFFT).
struct Conv2dFftSize {
  int ph = 0, pw = 0;
  int bins() const { return ph * (pw / 2 + 1); }  // complex bins of one real-to-complex transform
};
Conv2dFftSize conv2d_fft_size(const Conv2dShape& s);

namespace cpu {
// True when the cost model expects the FFT path to beat the direct one for shape s (used by
// Conv2dAlgo::Auto; deterministic: depends on the shape only, never on timings).
bool conv2d_fft_preferred(const Conv2dShape& s);
// Floats of scratch the three functions below need for shape s.
size_t conv2d_fft_workspace_floats(const Conv2dShape& s);
// Same contracts as cpu::conv2d_forward / conv2d_backward_data / conv2d_backward_weights.
void conv2d_fft_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                        bool fuse_relu, float* workspace);
void conv2d_fft_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx,
                              float* workspace);
void conv2d_fft_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight,
                                 float* dbias, float* workspace);
}  // namespace cpu

namespace gpu {
// CUDA twin (conv2d_fft.cu): cuFFT R2C/C2R batched 2D plans of size conv2d_fft_size(s), our own
// kernels for the zero-padded scatter of x/dy, the wrapped-kernel scatter of the weights, the
// per-bin channel product (register-blocked complex multiply-adds, coalesced over the bins) and
// the crop with 1/(ph*pw), bias and ReLU. The index maths is shared with a host replay test
// through kernels/conv2d_fft_math.h. gpu::conv2d_forward / conv2d_backward_data call these for
// Conv2dAlgo::Fft only; Auto stays direct on the GPU until this path is benchmarked there
// (bench/bench_ops_cuda.cu, "(FFT)" rows). Backward weights is always direct on the GPU.
//
// Plan policy: creating a cuFFT plan allocates device memory, and a training step must not
// allocate. conv2d_fft_workspace_floats(s) creates (once, cached per host thread by geometry and
// batch: cuFFT plans must not be shared between threads) every plan the two functions below need
// for s, because the workspace size includes the plans' work area: the CUDA backend sizes the
// workspace when a network reserves it (Network::plan), so steps on that thread only look the
// plans up. A call for a shape never sized on its thread creates its plans on that first call.
// Plans are never freed.
//
// Floats of device scratch for forward and backward-data of shape s (padded planes, spectra and
// the cuFFT work area); creates the cuFFT plans of s (see above).
size_t conv2d_fft_workspace_floats(const Conv2dShape& s);
// Same contracts as gpu::conv2d_forward / conv2d_backward_data; device pointers, queued on stream.
// workspace: at least conv2d_fft_workspace_floats(s) floats, 256-byte aligned (cudaMalloc'd).
void conv2d_fft_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                        bool fuse_relu, float* workspace, cudaStream_t stream);
void conv2d_fft_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx,
                              float* workspace, cudaStream_t stream);
}  // namespace gpu

}  // namespace isonet
