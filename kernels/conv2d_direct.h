// conv2d_direct.h: internal to the CPU conv (conv2d.cpp). Direct AVX2/FMA convolution kernels for
// the kernel sizes the models use (3, 5, 7). im2col + sgemm reaches ~50-60 GF/s per core on these
// shapes (c_out of 16..64 makes one GEMM dimension tiny, and im2col multiplies the memory traffic
// by k*k); the register-blocked direct loops over a zero-padded copy of the input reach ~90-107
// GF/s (about 60% of the core's FMA peak, on par with oneDNN's kernels in PyTorch).
// Builds without AVX2/FMA (or other k) use the im2col path: supported() says which.
#pragma once
#include <cstddef>

#include "kernels/conv2d.h"

namespace isonet::cpu::direct {

// True when this build has the direct kernels and they handle s (k in {3, 5, 7}).
bool supported(const Conv2dShape& s);

// Scratch floats for forward / backward-weights of shape s with `threads` workers.
size_t forward_workspace_floats(const Conv2dShape& s, int threads);
size_t backward_weights_workspace_floats(const Conv2dShape& s, int threads);

// y [n,c_out,h,w] = conv(x [n,c_in,h,w]) (+ bias, ReLU). With flip_transposed, `weight` is the
// weight of the OTHER direction, [c_in, c_out, k, k], and is used transposed and flipped: this is
// the backward-data pass dx = conv(dy, W') with W'[o,c,u,v] = W[c,o,k-1-u,k-1-v].
void forward(const Conv2dShape& s, const float* x, const float* weight, bool flip_transposed, const float* bias,
             float* y, bool relu, float* workspace, int threads);

// dweight [c_out,c_in,k,k] = sum over the batch of dy (x) x, overwritten. Deterministic for any
// thread count (fixed image chunks reduced in order).
void backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight, float* workspace,
                      int threads);

// out[i] = sum_q partial[q*count + i] summed in q order (so results never depend on threads).
// Call from inside an OpenMP parallel region: the elements are shared out with `omp for`.
void sum_partials(const float* partial, int chunks, size_t count, float* out);

}  // namespace isonet::cpu::direct
