// conv2d_fft_math.h: the per-element index maths of the CUDA frequency-domain convolution
// (conv2d_fft.cu), written once as ISONET_HD functions so that the CUDA kernels and the host
// test tests/test_conv2d_fft_gpu_math.cpp (which replays the whole GPU algorithm on the CPU with
// FFTW standing in for cuFFT) run the same code. Plain C++: no CUDA header needed.
//
// Data layouts (every plane row-major; bins = ph * (pw/2 + 1), the cuFFT/FFTW R2C layout):
//   real   [planes][ph][pw]            zero-padded real planes (input of R2C, output of C2R)
//   data   [n][r][bins]                spectra of x (forward, r = c_in) or dy (backward, r = c_out)
//   weight [c_out][c_in][bins]         spectra G of the wrapped kernels g (conv2d_fft.h)
//   out    [n][q][bins]                spectra of y (forward, q = c_out) or dx (backward, q = c_in)
#pragma once
#include <cmath>
#include <cstddef>
#include <type_traits>

#include "kernels/conv2d_fft.h"
#include "kernels/error.h"
#include "kernels/hostdevice.h"

#ifdef __CUDA_ARCH__
#define ISONET_FFT_UNROLL _Pragma("unroll")
#else
#define ISONET_FFT_UNROLL
#endif

namespace isonet::fftconv {

// One complex value; same size and alignment as cufftComplex (float2) and fftwf_complex, so a
// spectrum is a plain array of these. alignas(8): the GPU loads it with one 64-bit access.
struct alignas(8) FftComplex {
  float re, im;
};

// ---------------------------------------------------------------------------------------------
// (a) input scatter, (b) weight scatter, (d) crop: one element of the output array each
// ---------------------------------------------------------------------------------------------

// Tap index a in [0, k) that lands on padded position i (0 <= i < P) of the wrapped kernel
// g[d] = w[p - d] (indices mod P, p = k/2), or -1 where g is zero. d = i for i <= p and d = i - P
// for i >= P - p. When P < k (tiny images: P >= h + p still holds) two d's share a position; the
// first is kept. No output reads such a position: outputs need d = i - u with |d| <= h - 1, and
// the other d' = d +- P has |d'| >= P - (h-1) >= p + 1, outside g's support.
ISONET_HD int fft_tap_index(int i, int P, int p) {
  if (i <= p) return p - i;
  if (i >= P - p) return p + P - i;
  return -1;
}

// (a) Padded plane `plane` of [planes][ph][pw] at (i, j): src [planes][h][w] in the top-left
// corner, zeros elsewhere (this is the 'same' zero padding and the room for the circular wrap).
ISONET_HD float fft_embed_value(const float* src, unsigned plane, int i, int j, int h, int w) {
  return (i < h && j < w) ? src[(static_cast<size_t>(plane) * h + i) * w + j] : 0.f;
}

// (b) Wrapped kernel plane `plane` = o * c_in + c of [c_out*c_in][ph][pw] at (i, j):
// g[i][j] = weight[o][c][a][b] with a, b the tap indices of i, j (fft_tap_index), else 0.
// weight [c_out][c_in][k][k], so plane o*c_in + c starts at plane * k * k.
ISONET_HD float fft_weight_value(const float* weight, unsigned plane, int i, int j, int k, int ph, int pw) {
  const int p = k / 2;
  const int a = fft_tap_index(i, ph, p), b = fft_tap_index(j, pw, p);
  return (a >= 0 && b >= 0) ? weight[(static_cast<size_t>(plane) * k + a) * k + b] : 0.f;
}

// (d) Output element (plane, i, j) of [planes][h][w] from the C2R result real [planes][ph][pw]:
// scaled by 1/(ph*pw) (cuFFT and FFTW leave the inverse unnormalized), + bias[channel] when bias
// is not null, then max(0, .) when relu (NaN < 0 is false: NaN propagates, as in the direct path).
ISONET_HD float fft_crop_value(const float* real, unsigned plane, int i, int j, int ph, int pw, float scale,
                               const float* bias, int channel, bool relu) {
  float v = real[(static_cast<size_t>(plane) * ph + i) * pw + j] * scale;
  if (bias) v += bias[channel];
  return relu ? (v < 0.f ? 0.f : v) : v;
}

// 1/(ph*pw) rounded once to float.
inline float fft_inverse_scale(const Conv2dFftSize& sz) {
  return static_cast<float>(1.0 / (static_cast<double>(sz.ph) * sz.pw));
}

// ---------------------------------------------------------------------------------------------
// (c) per-bin channel product: out[m, q](f) = sum_r G'(q, r)(f) * data[m, r](f)
//   forward:       q = o, r = c, G'(o, c) = G[o, c]               (w_q = c_in, w_r = 1)
//   backward data: q = c, r = o, G'(c, o) = conj(G[o, c])         (w_q = 1, w_r = c_in)
// ---------------------------------------------------------------------------------------------

struct SpectralProductArgs {
  const FftComplex* data;    // [n][r][bins]
  const FftComplex* weight;  // [c_out][c_in][bins]: plane of (q, r) is q * w_q + r * w_r
  FftComplex* out;           // [n][q][bins]
  int n, q, r;
  size_t bins;
  size_t w_q, w_r;
};

// One GPU thread's share: bin f (< bins), batch rows n0 .. n0+BN-1, output channels q0 .. q0+BQ-1
// (rows/channels past n/q read as 0 and are never stored), reduction channels r_begin, r_begin +
// r_step, ... in that order (the r_step phases of a bin are summed by spectral_reduce_order).
// Per r it loads BN data and BQ weight values (threads along f: coalesced) and does BN*BQ complex
// multiply-adds in registers. re/im are overwritten.
template <int BN, int BQ, bool CONJ>
ISONET_HD void spectral_partial(const SpectralProductArgs& a, size_t f, int n0, int q0, int r_begin, int r_step,
                                float (&re)[BN][BQ], float (&im)[BN][BQ]) {
  ISONET_FFT_UNROLL
  for (int i = 0; i < BN; ++i) {
    ISONET_FFT_UNROLL
    for (int j = 0; j < BQ; ++j) re[i][j] = im[i][j] = 0.f;
  }
  for (int r = r_begin; r < a.r; r += r_step) {
    FftComplex d[BN], g[BQ];
    ISONET_FFT_UNROLL
    for (int i = 0; i < BN; ++i)
      d[i] = n0 + i < a.n ? a.data[(static_cast<size_t>(n0 + i) * a.r + r) * a.bins + f] : FftComplex{0.f, 0.f};
    ISONET_FFT_UNROLL
    for (int j = 0; j < BQ; ++j) {
      g[j] = q0 + j < a.q ? a.weight[(static_cast<size_t>(q0 + j) * a.w_q + static_cast<size_t>(r) * a.w_r) * a.bins + f]
                          : FftComplex{0.f, 0.f};
      if (CONJ) g[j].im = -g[j].im;
    }
    ISONET_FFT_UNROLL
    for (int i = 0; i < BN; ++i) {
      ISONET_FFT_UNROLL
      for (int j = 0; j < BQ; ++j) {
        // (g.re + i g.im)(d.re + i d.im)
        re[i][j] = fmaf(g[j].re, d[i].re, re[i][j]);
        re[i][j] = fmaf(-g[j].im, d[i].im, re[i][j]);
        im[i][j] = fmaf(g[j].re, d[i].im, im[i][j]);
        im[i][j] = fmaf(g[j].im, d[i].re, im[i][j]);
      }
    }
  }
}

// Stores the finished sums of bin f for rows n0.. and channels q0.. that exist.
template <int BN, int BQ>
ISONET_HD void spectral_store(const SpectralProductArgs& a, size_t f, int n0, int q0, const float (&re)[BN][BQ],
                              const float (&im)[BN][BQ]) {
  ISONET_FFT_UNROLL
  for (int i = 0; i < BN; ++i) {
    ISONET_FFT_UNROLL
    for (int j = 0; j < BQ; ++j)
      if (n0 + i < a.n && q0 + j < a.q)
        a.out[(static_cast<size_t>(n0 + i) * a.q + q0 + j) * a.bins + f] = FftComplex{re[i][j], im[i][j]};
  }
}

// How the product kernel is cut: BN x BQ outputs per thread, `split` threads (lanes of one warp)
// per bin splitting the reduction channels (phase s takes r = s, s + split, ...).
struct SpectralBlocking {
  int bn = 1, bq = 1, split = 1;
};

constexpr int kSpectralWarps = 4;                      // warps per block (128 threads)
constexpr long long kSpectralTargetThreads = 1 << 16;  // ~ what an H100 keeps resident at ~128 regs/thread

// Bins one block covers.
inline int spectral_bins_per_block(int split) { return kSpectralWarps * (32 / split); }

// The blocking for "n batch rows x q outputs, reduction over r, `bins` bins": up to 8 x 8 outputs
// per thread (each loaded value is reused 8 times), then, while the grid is below ~64k threads,
// the reduction split over 2 or 4 lanes (e.g. forward 16 x 96 -> 32 at 64x64: 2520 bins x 2 x 4
// thread blocks = 20k threads, split 4 -> 80k). Deterministic: depends on the shape only.
inline SpectralBlocking choose_spectral_blocking(int n, int q, int r, size_t bins) {
  auto pow2_upto8 = [](int v) {
    int b = 1;
    while (b < v && b < 8) b *= 2;
    return b;
  };
  SpectralBlocking b;
  b.bn = pow2_upto8(n);
  b.bq = pow2_upto8(q);
  const long long threads = static_cast<long long>(bins) * ((n + b.bn - 1) / b.bn) * ((q + b.bq - 1) / b.bq);
  while (b.split < 4 && threads * b.split < kSpectralTargetThreads && r / (2 * b.split) >= 8) b.split *= 2;
  return b;
}

// The order in which the split phases of one bin are added (the GPU's shuffle tree, reproduced
// by the host test): for off = split/2, split/4, ..., 1: phase s += phase s + off, for s < off.
// Phase 0 ends with the total. acc[s] is any type with +=.
template <class T>
void spectral_reduce_order(T* acc, int split) {
  for (int off = split / 2; off >= 1; off /= 2)
    for (int s = 0; s < off; ++s) acc[s] += acc[s + off];
}

// Calls f(std::integral_constant<int, BN>{}, std::integral_constant<int, BQ>{}) for BN, BQ in
// {1, 2, 4, 8} (the instantiated kernels).
template <class F>
void with_spectral_blocking(int bn, int bq, F&& f) {
  auto inner = [&](auto BN) {
    switch (bq) {
      case 1: return f(BN, std::integral_constant<int, 1>{});
      case 2: return f(BN, std::integral_constant<int, 2>{});
      case 4: return f(BN, std::integral_constant<int, 4>{});
      case 8: return f(BN, std::integral_constant<int, 8>{});
      default: fail("conv2d fft: no product kernel for BQ = ", bq);
    }
  };
  switch (bn) {
    case 1: return inner(std::integral_constant<int, 1>{});
    case 2: return inner(std::integral_constant<int, 2>{});
    case 4: return inner(std::integral_constant<int, 4>{});
    case 8: return inner(std::integral_constant<int, 8>{});
    default: fail("conv2d fft: no product kernel for BN = ", bn);
  }
}

// ---------------------------------------------------------------------------------------------
// Workspace layout (offsets in floats from the workspace start, each region 256-byte aligned)
// ---------------------------------------------------------------------------------------------

struct Conv2dFftLayout {
  Conv2dFftSize size;
  size_t bins = 0;
  size_t real = 0, data = 0, weight = 0, out = 0, work = 0;  // region offsets (floats)
  size_t real_floats = 0, data_floats = 0, weight_floats = 0, out_floats = 0, work_floats = 0;
  size_t total_floats = 0;
};

// Forward and backward data of shape s with transform size sz and a cuFFT work area of
// work_bytes. real holds the largest batch of padded planes (weights, x, y, dy or dx); data and
// out the largest batch of spectra of [n, c_in] or [n, c_out]; weight the c_out x c_in spectra.
inline Conv2dFftLayout conv2d_fft_layout(const Conv2dShape& s, const Conv2dFftSize& sz, size_t work_bytes) {
  constexpr size_t kAlign = 64;  // floats = 256 bytes
  auto round_up = [](size_t v) { return (v + kAlign - 1) / kAlign * kAlign; };
  Conv2dFftLayout L;
  L.size = sz;
  L.bins = static_cast<size_t>(sz.bins());
  const size_t nc_in = static_cast<size_t>(s.n) * s.c_in, nc_out = static_cast<size_t>(s.n) * s.c_out;
  const size_t w_planes = static_cast<size_t>(s.c_out) * s.c_in;
  const size_t planes = nc_in > nc_out ? nc_in : nc_out;
  L.real_floats = round_up((planes > w_planes ? planes : w_planes) * sz.ph * sz.pw);
  L.data_floats = round_up(2 * planes * L.bins);
  L.out_floats = L.data_floats;
  L.weight_floats = round_up(2 * w_planes * L.bins);
  L.work_floats = round_up((work_bytes + sizeof(float) - 1) / sizeof(float));
  L.real = 0;
  L.data = L.real + L.real_floats;
  L.weight = L.data + L.data_floats;
  L.out = L.weight + L.weight_floats;
  L.work = L.out + L.out_floats;
  L.total_floats = L.work + L.work_floats;
  return L;
}

}  // namespace isonet::fftconv
