// conv2d_direct.cpp: direct AVX2/FMA convolution kernels for k in {3, 5, 7} (see conv2d_direct.h).
//
// Forward (and backward data, as a forward with the flipped transposed weight): work items are
// (image, tile of output rows). An item copies the input rows it needs, zero padded by k/2 on
// every side and on the right up to a multiple of 6 columns, into a per-thread tile
// [c_in, rows+k-1, wp]. A register block holds 16 output channels (2 ymm, channels in lanes) x 6
// output pixels = 12 accumulators; per tap (c, u, v) it loads 2 weight vectors, broadcasts 6
// input values and does 12 FMAs. The weight is packed once per call as [c_out/16][c_in][k*k][16].
// Results are transposed through a small buffer on the way out (bias, ReLU), dropping channels
// past c_out and columns past w. A single output channel (c_out == 1) would fill 1 of the 16 lanes:
// it has its own row loop with 8 output columns in the lanes (forward_row_single).
//
// Backward weights: dW[o,c,u,v] = sum_{b,i,j} dy[b,o,i,j] * xpad[b,c,i+u,j+v], columns in lanes.
// For each image and input channel the plane is copied zero padded into a per-thread buffer;
// a block of 3 output channels x up to 4 taps v of one kernel row u keeps 12 accumulators of 8
// column partial sums: per 8 columns 3 loads of dy, 4 shifted loads of x, 12 FMAs. Rows are
// processed in blocks of 4 so that every tap re-reads them from L1. Images are split into fixed
// chunks with their own partial sums, reduced in chunk order: deterministic for any thread count.
// Work items are (image chunk, input channel): they write disjoint parts of the partial sums.
//
// Measured on one core of the development machine (Zen 4, AVX2 FMA peak ~175 GF/s), IsoNet-2
// layers at batch 16: forward and backward data ~100-107 GF/s, backward weights ~90-98 GF/s,
// against ~50-60 GF/s for im2col + OpenBLAS sgemm on the same shapes.
#include "kernels/conv2d_direct.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "kernels/error.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define ISONET_CONV_DIRECT 1
#else
#define ISONET_CONV_DIRECT 0
#endif

namespace isonet::cpu::direct {

void sum_partials(const float* partial, int chunks, size_t count, float* out) {
#pragma omp for schedule(static)
  for (size_t i = 0; i < count; ++i) {
    float sum = partial[i];
    for (int q = 1; q < chunks; ++q) sum += partial[static_cast<size_t>(q) * count + i];
    out[i] = sum;
  }
}

#if ISONET_CONV_DIRECT
namespace {

constexpr int kOG = 16;                           // forward: output channels per block (2 vectors)
constexpr int kUR = 6;                            // forward: output pixels per block
constexpr size_t kTileFloats = size_t(1) << 17;   // forward: padded input tile target (512 KiB, ~L2)
constexpr int kChunks = 8;                        // backward weights: partial sums over image chunks

size_t align16(size_t floats) { return (floats + 15) / 16 * 16; }
int round_up(int a, int m) { return (a + m - 1) / m * m; }

// Row length of the padded copies: k/2 zeros left, w values, zeros up to a multiple of `mult`
// (so whole register blocks can read past w), k/2 zeros right.
int padded_width(const Conv2dShape& s, int mult) { return round_up(s.w, mult) + 2 * (s.k / 2); }

struct FwdTiling {
  int rows;          // output rows per item
  int tiles;         // items per image
  size_t tile;       // floats of one thread's padded tile
};

FwdTiling fwd_tiling(const Conv2dShape& s) {
  const int halo = 2 * (s.k / 2);
  const size_t per_row = static_cast<size_t>(s.c_in) * padded_width(s, kUR);
  const long fit = static_cast<long>(kTileFloats / per_row) - halo;
  FwdTiling t;
  t.rows = static_cast<int>(std::clamp<long>(fit, 1, s.h));
  t.tiles = (s.h + t.rows - 1) / t.rows;
  t.tile = align16(per_row * static_cast<size_t>(t.rows + halo));
  return t;
}

size_t packed_weight_floats(const Conv2dShape& s) {
  return align16(static_cast<size_t>(round_up(s.c_out, kOG)) * s.c_in * s.k * s.k);
}

// wp [c_out/16][c_in][k*k][16] (zero for channels past c_out), from weight [c_out,c_in,k,k], or
// with flip_t from weight [c_in,c_out,k,k] as W'[o,c,t] = W[c,o,k*k-1-t] (t = u*k+v; reversing t
// flips both u and v).
void pack_weights(const Conv2dShape& s, const float* weight, bool flip_t, float* wp) {
  const int kk = s.k * s.k, groups = round_up(s.c_out, kOG) / kOG;
  for (int g = 0; g < groups; ++g)
    for (int c = 0; c < s.c_in; ++c)
      for (int t = 0; t < kk; ++t)
        for (int q = 0; q < kOG; ++q) {
          const int o = g * kOG + q;
          float v = 0.f;
          if (o < s.c_out)
            v = flip_t ? weight[(static_cast<size_t>(c) * s.c_out + o) * kk + (kk - 1 - t)]
                       : weight[(static_cast<size_t>(o) * s.c_in + c) * kk + t];
          wp[((static_cast<size_t>(g) * s.c_in + c) * kk + t) * kOG + q] = v;
        }
}

// One zero-padded row: p zeros, src[0..w) (or zeros when src is null), zeros up to wp.
void pad_row(const float* src, int w, int p, int wp, float* dst) {
  if (!src) {
    std::memset(dst, 0, wp * sizeof(float));
    return;
  }
  std::memset(dst, 0, p * sizeof(float));
  std::memcpy(dst + p, src, w * sizeof(float));
  std::memset(dst + p + w, 0, (wp - p - w) * sizeof(float));
}

// tile [c_in][nr+2p][wp] = rows r0-p .. r0+nr+p-1 of image xb [c_in,h,w], zero padded.
void fill_tile(const Conv2dShape& s, const float* xb, int r0, int nr, float* tile) {
  const int p = s.k / 2, wp = padded_width(s, kUR), trows = nr + 2 * p;
  for (int c = 0; c < s.c_in; ++c)
    for (int t = 0; t < trows; ++t) {
      const int r = r0 - p + t;
      const float* src = (r < 0 || r >= s.h) ? nullptr : xb + (static_cast<size_t>(c) * s.h + r) * s.w;
      pad_row(src, s.w, p, wp, tile + (static_cast<size_t>(c) * trows + t) * wp);
    }
}

// Lanes [0, count) set.
__m256i lane_mask(int count) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Forward register block: 16 output channels (2 vectors, lanes = channels) x 6 output pixels
// (j0..j0+5 of tile row i). Per tap: 2 weight loads, 6 input broadcasts, 12 FMAs (the workspace
// need not be 32-byte aligned, so loads are unaligned; on aligned data they cost the same).
// tile: padded input [c_in][trows][wp]; wg: packed weights of the channel group.
template <int K>
inline void forward_block(const float* tile, int trows, int wp, int c_in, const float* wg, int i, int j0,
                          __m256 (&acc)[kUR][2]) {
  for (int r = 0; r < kUR; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  for (int c = 0; c < c_in; ++c) {
    const float* base = tile + (static_cast<size_t>(c) * trows + i) * wp + j0;
    const float* wc = wg + static_cast<size_t>(c) * K * K * kOG;
    for (int u = 0; u < K; ++u) {
      const float* row = base + u * wp;
      const float* wu = wc + u * K * kOG;
      // Not unrolled over v: GCC then interleaves taps and runs out of the 16 ymm registers,
      // spilling accumulators to the stack (measured 2x slower).
#pragma GCC unroll 1
      for (int v = 0; v < K; ++v) {
        const __m256 w0 = _mm256_loadu_ps(wu + v * kOG), w1 = _mm256_loadu_ps(wu + v * kOG + 8);
        for (int r = 0; r < kUR; ++r) {
          const __m256 xv = _mm256_broadcast_ss(row + v + r);
          acc[r][0] = _mm256_fmadd_ps(w0, xv, acc[r][0]);
          acc[r][1] = _mm256_fmadd_ps(w1, xv, acc[r][1]);
        }
      }
    }
  }
}

// Writes a block to yb [c_out,h,w] at output row `row`, columns j0..j0+5, with bias and ReLU;
// channels past c_out and columns past w are dropped. The block is pixel-major, y channel-major:
// the transpose goes through a small buffer (a few % of the block's FMAs for c_in >= 16).
inline void store_block(const __m256 (&acc)[kUR][2], const Conv2dShape& s, float* yb, int g, int row, int j0,
                        const float* bias, bool relu) {
  alignas(32) float buf[kUR][kOG];
  for (int r = 0; r < kUR; ++r) {
    _mm256_store_ps(buf[r], acc[r][0]);
    _mm256_store_ps(buf[r] + 8, acc[r][1]);
  }
  const int cols = std::min(kUR, s.w - j0), channels = std::min(kOG, s.c_out - g * kOG);
  for (int q = 0; q < channels; ++q) {
    const int o = g * kOG + q;
    const float b = bias ? bias[o] : 0.f;
    float* dst = yb + (static_cast<size_t>(o) * s.h + row) * s.w + j0;
    for (int r = 0; r < cols; ++r) {
      const float v = buf[r][q] + b;
      dst[r] = relu && v < 0.f ? 0.f : v;  // NaN < 0 is false: NaN propagates
    }
  }
}

// Forward for a single output channel (c_out == 1: IsoNet-1's last layer, and the backward data of
// every c_in == 1 first layer). The 16-channel block above would waste 15 of its 16 lanes there
// (measured 6.6 GF/s at 32 -> 1, 5x5, batch 16 of 128x128); here the lanes hold 8 output columns
// instead. For one output row yrow [w] and each (c, u) this adds the K taps of tile row i+u to the
// row, 8 columns at a time (masked on the last partial vector, so nothing past w is read or
// written): per 8 outputs 1 load + 1 store of y, K loads of x, K FMAs with broadcast weights held
// in registers. Measured on that shape: 63.7 -> 10.7-13 ms on one core (6.6 -> 32-39 GF/s), 35.9 ->
// 5.1-5.6 ms on two; the 1 -> 16, 7x7 layer's backward data (16 -> 1) 60.7 -> 8.5 ms on one core.
// wg: packed weights of group 0, [c_in][K*K][16], channel 0 in lane 0.
template <int K>
void forward_row_single(const Conv2dShape& s, const float* tile, int trows, int wp, const float* wg, int i,
                        float b, bool relu, float* yrow) {
  const int full = s.w / 8, rest = s.w % 8;
  const __m256i tail = lane_mask(rest);
  for (int j = 0; j < s.w; ++j) yrow[j] = b;
  for (int c = 0; c < s.c_in; ++c)
    for (int u = 0; u < K; ++u) {
      const float* row = tile + (static_cast<size_t>(c) * trows + i + u) * wp;
      __m256 wv[K];
      for (int v = 0; v < K; ++v) wv[v] = _mm256_broadcast_ss(wg + (static_cast<size_t>(c) * K * K + u * K + v) * kOG);
      for (int jv = 0; jv < full; ++jv) {
        __m256 acc = _mm256_loadu_ps(yrow + 8 * jv);
        for (int v = 0; v < K; ++v) acc = _mm256_fmadd_ps(wv[v], _mm256_loadu_ps(row + 8 * jv + v), acc);
        _mm256_storeu_ps(yrow + 8 * jv, acc);
      }
      if (rest) {
        float* yt = yrow + 8 * full;
        __m256 acc = _mm256_maskload_ps(yt, tail);
        for (int v = 0; v < K; ++v) acc = _mm256_fmadd_ps(wv[v], _mm256_maskload_ps(row + 8 * full + v, tail), acc);
        _mm256_maskstore_ps(yt, tail, acc);
      }
    }
  if (relu)
    for (int j = 0; j < s.w; ++j) yrow[j] = yrow[j] < 0.f ? 0.f : yrow[j];  // NaN < 0 is false: NaN propagates
}

template <int K>
void forward_impl(const Conv2dShape& s, const float* x, const float* weight, bool flip_t, const float* bias, float* y,
                  bool relu, float* workspace, int threads) {
  const FwdTiling t = fwd_tiling(s);
  float* wp = workspace;
  float* tiles = workspace + packed_weight_floats(s);
  pack_weights(s, weight, flip_t, wp);
  const size_t plane = static_cast<size_t>(s.h) * s.w;
  const int items = s.n * t.tiles, groups = round_up(s.c_out, kOG) / kOG, wpad = padded_width(s, kUR);
#pragma omp parallel num_threads(std::min(threads, items))
  {
    float* tile = tiles + static_cast<size_t>(omp_get_thread_num()) * t.tile;
#pragma omp for schedule(dynamic, 1)
    for (int it = 0; it < items; ++it) {
      const int b = it / t.tiles, r0 = (it % t.tiles) * t.rows, nr = std::min(t.rows, s.h - r0);
      const int trows = nr + 2 * (K / 2);
      fill_tile(s, x + static_cast<size_t>(b) * s.c_in * plane, r0, nr, tile);
      float* yb = y + static_cast<size_t>(b) * s.c_out * plane;  // [c_out,h,w]
      if (s.c_out == 1) {
        for (int i = 0; i < nr; ++i)
          forward_row_single<K>(s, tile, trows, wpad, wp, i, bias ? bias[0] : 0.f, relu,
                                yb + static_cast<size_t>(r0 + i) * s.w);
        continue;
      }
      for (int g = 0; g < groups; ++g) {
        const float* wg = wp + static_cast<size_t>(g) * s.c_in * K * K * kOG;
        for (int i = 0; i < nr; ++i)
          for (int j0 = 0; j0 < s.w; j0 += kUR) {
            __m256 acc[kUR][2];
            forward_block<K>(tile, trows, wpad, s.c_in, wg, i, j0, acc);
            store_block(acc, s, yb, g, r0 + i, j0, bias, relu);
          }
      }
    }
  }
}

// Output channels per backward-weights block: MR = 3 with a pass of NV = 4 taps gives 12
// accumulators + 3 dy + 1 x = 16 ymm registers, and per 8 columns 7 loads for 12 FMAs.
constexpr int kMR = 3;

// Backward weights, accumulating taps v in [v0, v0+NV) of kernel row u over output rows [i0, i1)
// for the MR <= kMR output channels whose dy planes are dyo[] into acc [MR][NV] (vectors of 8 column
// partial sums). Per 8 columns: MR loads of dy, NV shifted loads of x, MR*NV FMAs.
template <int MR, int NV>
inline void weights_rows(const Conv2dShape& s, const float* pad, int wp, const float* const* dyo, int u,
                         int v0, int i0, int i1, __m256* acc) {
  const int full = s.w / 8, rest = s.w % 8;
  const __m256i tail = lane_mask(rest);
  __m256 a[MR][NV];
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) a[m][v] = acc[m * NV + v];
  for (int i = i0; i < i1; ++i) {
    const float* xr = pad + static_cast<size_t>(i + u) * wp + v0;
    const float* d[MR];
    for (int m = 0; m < MR; ++m) d[m] = dyo[m] + static_cast<size_t>(i) * s.w;
    auto step = [&](int j, const __m256 (&g)[MR]) {
      for (int v = 0; v < NV; ++v) {
        __m256 xv = _mm256_loadu_ps(xr + j + v);
        // Keeps xv in a register: otherwise GCC folds the load into every FMA, loading x MR
        // times, and the loop becomes load-bound.
        asm("" : "+x"(xv));
        for (int m = 0; m < MR; ++m) a[m][v] = _mm256_fmadd_ps(g[m], xv, a[m][v]);
      }
    };
    for (int jv = 0; jv < full; ++jv) {
      __m256 g[MR];
      for (int m = 0; m < MR; ++m) g[m] = _mm256_loadu_ps(d[m] + 8 * jv);
      step(8 * jv, g);
    }
    if (rest) {  // columns past w: dy is masked to 0 (x there is padding or the neighbouring columns)
      __m256 g[MR];
      for (int m = 0; m < MR; ++m) g[m] = _mm256_maskload_ps(d[m] + 8 * full, tail);
      step(8 * full, g);
    }
  }
  for (int m = 0; m < MR; ++m)
    for (int v = 0; v < NV; ++v) acc[m * NV + v] = a[m][v];
}

// Output rows per block in weights_block: the block's dy rows (kMR channels) and x rows (+K-1)
// stay in L1 while all K*K taps pass over them.
constexpr int kWeightRows = 4;

// Backward weights for one image: adds to pq [c_out,c_in,K,K] the contributions of input channel c
// (padded plane `pad` [h+K-1][wp]) and the MR output channels o0..o0+MR-1 with dy planes dyo[].
// MR < kMR only for the last channels (c_out % 3) and c_out == 1 (IsoNet-1's last layer), where
// computing repeated channels would waste 2/3 of the FMAs (measured, 32 -> 1, 5x5, batch 16 of
// 128x128 on one core: 17.0 ms with MR = 3, 13.3 ms with MR = 1, which is load-bound: 5 loads per
// 4 FMAs). The K taps of a kernel row are done in passes of at most 4 taps to
// stay within the 16 ymm registers.
template <int K, int MR>
void weights_block(const Conv2dShape& s, const float* pad, const float* const* dyo, int o0, int c, float* pq) {
  constexpr int NA = K < 4 ? K : 4, NB = K - NA;  // K <= 7: at most two passes
  const int wp = padded_width(s, 8);
  __m256 acc[K][MR * K];  // [u][first pass: MR*NA | second pass: MR*NB]
  for (int u = 0; u < K; ++u)
    for (int t = 0; t < MR * K; ++t) acc[u][t] = _mm256_setzero_ps();
  for (int i0 = 0; i0 < s.h; i0 += kWeightRows) {
    const int i1 = std::min(s.h, i0 + kWeightRows);
    for (int u = 0; u < K; ++u) {
      weights_rows<MR, NA>(s, pad, wp, dyo, u, 0, i0, i1, acc[u]);
      if constexpr (NB > 0) weights_rows<MR, NB>(s, pad, wp, dyo, u, NA, i0, i1, acc[u] + MR * NA);
    }
  }
  for (int m = 0; m < MR; ++m) {
    float* wo = pq + (static_cast<size_t>(o0 + m) * s.c_in + c) * K * K;
    for (int u = 0; u < K; ++u) {
      for (int v = 0; v < NA; ++v) wo[u * K + v] += hsum(acc[u][m * NA + v]);
      for (int v = 0; v < NB; ++v) wo[u * K + NA + v] += hsum(acc[u][MR * NA + m * NB + v]);
    }
  }
}

size_t weight_floats(const Conv2dShape& s) { return static_cast<size_t>(s.c_out) * s.c_in * s.k * s.k; }
size_t pad_plane_floats(const Conv2dShape& s) {
  return align16(static_cast<size_t>(s.h + 2 * (s.k / 2)) * padded_width(s, 8));
}

template <int K>
void backward_weights_impl(const Conv2dShape& s, const float* x, const float* dy, float* dweight, float* workspace,
                           int threads) {
  const int chunks = std::min(kChunks, s.n), p = K / 2, wp = padded_width(s, 8);
  const size_t nw = weight_floats(s), plane = static_cast<size_t>(s.h) * s.w;
  float* partial = workspace;  // [chunks][c_out,c_in,K,K]
  float* pads = workspace + align16(kChunks * nw);
  // Items (chunk q, input channel c) write disjoint entries partial[q][:, c]: parallel over both.
  const int items = chunks * s.c_in;
#pragma omp parallel num_threads(std::min(threads, items))
  {
    float* pad = pads + static_cast<size_t>(omp_get_thread_num()) * pad_plane_floats(s);
#pragma omp for schedule(dynamic, 1)
    for (int it = 0; it < items; ++it) {
      const int q = it / s.c_in, c = it % s.c_in;
      float* pq = partial + static_cast<size_t>(q) * nw;
      for (int o = 0; o < s.c_out; ++o) std::memset(pq + (static_cast<size_t>(o) * s.c_in + c) * K * K, 0, K * K * sizeof(float));
      for (int b = q * s.n / chunks; b < (q + 1) * s.n / chunks; ++b) {
        const float* xc = x + (static_cast<size_t>(b) * s.c_in + c) * plane;  // [h,w]
        for (int r = 0; r < s.h + 2 * p; ++r) {
          const int sr = r - p;
          pad_row(sr < 0 || sr >= s.h ? nullptr : xc + static_cast<size_t>(sr) * s.w, s.w, p, wp,
                  pad + static_cast<size_t>(r) * wp);
        }
        const float* dyb = dy + static_cast<size_t>(b) * s.c_out * plane;  // [c_out,h,w]
        for (int o0 = 0; o0 < s.c_out; o0 += kMR) {
          const int mr = std::min(kMR, s.c_out - o0);
          const float* dyo[kMR];
          for (int m = 0; m < mr; ++m) dyo[m] = dyb + (o0 + m) * plane;
          if (mr == 1) weights_block<K, 1>(s, pad, dyo, o0, c, pq);
          else if (mr == 2) weights_block<K, 2>(s, pad, dyo, o0, c, pq);
          else weights_block<K, kMR>(s, pad, dyo, o0, c, pq);
        }
      }
    }
    sum_partials(partial, chunks, nw, dweight);
  }
}

}  // namespace

bool supported(const Conv2dShape& s) { return s.k == 3 || s.k == 5 || s.k == 7; }

size_t forward_workspace_floats(const Conv2dShape& s, int threads) {
  return packed_weight_floats(s) + fwd_tiling(s).tile * static_cast<size_t>(threads);
}

size_t backward_weights_workspace_floats(const Conv2dShape& s, int threads) {
  return align16(kChunks * weight_floats(s)) + pad_plane_floats(s) * static_cast<size_t>(threads);
}

void forward(const Conv2dShape& s, const float* x, const float* weight, bool flip_transposed, const float* bias,
             float* y, bool relu, float* workspace, int threads) {
  switch (s.k) {
    case 3: return forward_impl<3>(s, x, weight, flip_transposed, bias, y, relu, workspace, threads);
    case 5: return forward_impl<5>(s, x, weight, flip_transposed, bias, y, relu, workspace, threads);
    default: return forward_impl<7>(s, x, weight, flip_transposed, bias, y, relu, workspace, threads);
  }
}

void backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight, float* workspace,
                      int threads) {
  switch (s.k) {
    case 3: return backward_weights_impl<3>(s, x, dy, dweight, workspace, threads);
    case 5: return backward_weights_impl<5>(s, x, dy, dweight, workspace, threads);
    default: return backward_weights_impl<7>(s, x, dy, dweight, workspace, threads);
  }
}

#else  // no AVX2/FMA in this build: conv2d.cpp uses its im2col path for every shape

bool supported(const Conv2dShape&) { return false; }
size_t forward_workspace_floats(const Conv2dShape&, int) { return 0; }
size_t backward_weights_workspace_floats(const Conv2dShape&, int) { return 0; }
void forward(const Conv2dShape&, const float*, const float*, bool, const float*, float*, bool, float*, int) {
  fail("conv2d: direct kernels are not built (no AVX2/FMA); supported() is false");
}
void backward_weights(const Conv2dShape&, const float*, const float*, float*, float*, int) {
  fail("conv2d: direct kernels are not built (no AVX2/FMA); supported() is false");
}

#endif

}  // namespace isonet::cpu::direct
