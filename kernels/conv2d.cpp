// conv2d.cpp: CPU twin of the 'same' 2D convolution (conv2d.h): the public entries, the choice
// of algorithm, and the im2col + OpenBLAS sgemm path.
//
// Algorithm (Conv2dShape::algo): Fft goes to the frequency-domain path of conv2d_fft.cpp, Direct
// to the spatial paths below, Auto asks conv2d_fft_preferred(s) (a shape-only cost model, so a
// layer always takes the same path and conv2d_workspace_floats sizes the scratch for it). On the
// development machine Auto picks FFT for IsoNet-2's 7x7 layers with >= 16 channels at a training
// batch (1.4-2.6x faster per conv) and the spatial paths for small batches, thin layers and 1x1.
// Spatial paths: kernel sizes 3, 5 and 7 go to the direct AVX2 kernels of conv2d_direct.cpp when
// the build has AVX2/FMA (about 1.5-2x faster there than im2col); 1x1 and other sizes, and builds
// without AVX2, use im2col + sgemm below.
//
// im2col path:
// Work is cut into items = (image, tile of output rows). Per item:
//   col [c_in*k*k, nr*w] = im2col(x_b rows r0..r0+nr)     (1x1: x itself is that matrix, no copy)
//   y_b[:, r0*w ...] [c_out, nr*w] = W [c_out, c_in*k*k] * col      (sgemm)
//   bias and ReLU on the tile while it is in cache.
// Tiles keep col small (kColTileFloats): a whole 128x128 image with 48 channels and k=7 would be a
// 150 MB matrix, written once and read back from memory; a tile stays in the caches.
//
// Backward data is the same forward core: dx = conv(dy, W') with W'[c,o,u,v] = W[o,c,k-1-u,k-1-v]
// (the transpose of a 'same' stride-1 conv is a 'same' conv with the flipped kernel), which keeps
// the GEMM well shaped (K = c_out*k*k rather than c_out) and needs no col2im scatter.
// Backward weights: dW [c_out, c_in*k*k] = sum over items of dy_tile * col_tile^T.
//
// Threading: ONE OpenMP team per call runs the items (dynamic schedule, so a thread that the OS
// preempts does not hold the others back), each thread with its own col tile and a single-threaded
// sgemm. This deliberately does not let OpenBLAS thread its GEMM: two thread pools (OpenMP for
// im2col, OpenBLAS for GEMM) on the same cores hand the cores back and forth between spinning
// workers many times per call; measured on a busy 2-core machine that was 4-20x slower than
// running single-threaded, while the per-item split scales with the cores (1.9-2.0x on 2 idle
// cores). OpenBLAS is therefore set to one thread before each sgemm path (blas_single_threaded).
//
// Determinism: forward and backward-data items write disjoint outputs; backward weights sums
// items into a fixed number of partial sums by a fixed item->chunk map and reduces them in chunk
// order, so results do not depend on the thread count or the schedule.
#include "kernels/conv2d.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>

#include "kernels/conv2d_cpu.h"
#include "kernels/conv2d_direct.h"
#include "kernels/conv2d_fft.h"
#include "kernels/error.h"
#include "kernels/op_checks.h"

namespace isonet::cpu {

namespace {

// Target size of one thread's im2col tile in floats (1 MiB, about one core's L2). Measured on the
// IsoNet-2 layers: 2^18..2^20 floats equally fast, 2^16 4% and 2^22 (tiles falling out to L3)
// 20% slower.
constexpr size_t kColTileFloats = size_t(1) << 18;
// Partial sums of the weight gradient (fixed, so the summation order never depends on threads).
constexpr int kWeightChunks = 8;

// Below this many multiply-adds a call runs on the calling thread alone: the team's start and
// end barrier cost microseconds on idle cores and whole scheduler time slices on a loaded machine
// (measured: the gradient-check test, thousands of tiny convs, took 7-16 s with 2 threads on an
// overloaded host and 0.07 s with 1). 2^24 MACs is ~0.2 ms of one core; every IsoNet layer at a
// training batch is 10-100x above it.
constexpr double kParallelMinMacs = double(1 << 24);

// Threads for one spatial-domain call of shape s: conv_threads(), or 1 for small problems.
int team_size(const Conv2dShape& s) {
  return conv_team_size(double(s.n) * s.c_in * s.c_out * s.k * s.k * s.h * s.w);
}

// See the file comment: the conv threads itself, so each sgemm must run on the calling thread.
void blas_single_threaded() {
  if (openblas_get_num_threads() != 1) openblas_set_num_threads(1);
}

size_t align16(size_t floats) { return (floats + 15) / 16 * 16; }

// How a pass over `channels` input channels (the GEMM's inner dimension c*k*k) is cut into items.
struct Tiling {
  int K;        // channels*k*k, rows of col
  int rows;     // output rows per tile
  int tiles;    // tiles per image
  size_t col;   // floats of one thread's col tile (0 for 1x1)
};

Tiling tiling(const Conv2dShape& s, int channels) {
  Tiling t;
  t.K = channels * s.k * s.k;
  const size_t per_row = static_cast<size_t>(t.K) * static_cast<size_t>(s.w);
  t.rows = static_cast<int>(std::clamp<size_t>(kColTileFloats / per_row, 1, static_cast<size_t>(s.h)));
  t.tiles = (s.h + t.rows - 1) / t.rows;
  t.col = s.k == 1 ? 0 : per_row * static_cast<size_t>(t.rows);
  return t;
}

size_t flipped_floats(const Conv2dShape& s) { return align16(static_cast<size_t>(s.c_in) * s.c_out * s.k * s.k); }
size_t dweight_floats(const Conv2dShape& s) { return static_cast<size_t>(s.c_out) * s.c_in * s.k * s.k; }

// col [c*k*k, nr*w] for output rows [r0, r0+nr) of one image x [c,h,w]:
// col[(ch*k + u)*k + v][i*w + j] = x[ch][r0+i+u-k/2][j+v-k/2], 0 outside the image.
void im2col_tile(const float* x, int c, int h, int w, int k, int r0, int nr, float* col) {
  const int pad = k / 2, rows = c * k * k;
  const size_t ncols = static_cast<size_t>(nr) * w, plane = static_cast<size_t>(h) * w;
  for (int r = 0; r < rows; ++r) {
    const int ch = r / (k * k), u = (r / k) % k, v = r % k;
    const int dj = v - pad;                               // source column = j + dj
    const int j0 = std::min(w, std::max(0, -dj));         // first j with a source column >= 0
    const int j1 = std::max(j0, std::min(w, w - dj));     // one past the last j with source < w
    const float* xc = x + ch * plane;
    float* dst = col + r * ncols;
    for (int i = 0; i < nr; ++i) {
      float* d = dst + static_cast<size_t>(i) * w;
      const int si = r0 + i + u - pad;
      if (si < 0 || si >= h) {
        std::memset(d, 0, w * sizeof(float));
        continue;
      }
      const float* src = xc + static_cast<size_t>(si) * w + dj;
      for (int j = 0; j < j0; ++j) d[j] = 0.f;
      for (int j = j0; j < j1; ++j) d[j] = src[j];
      for (int j = j1; j < w; ++j) d[j] = 0.f;
    }
  }
}

// The GEMM operand for one item: its col tile (after im2col) or, for 1x1, x's rows directly.
struct Cols {
  const float* data;
  int ld;
};

Cols item_cols(const Conv2dShape& s, int channels, const float* xb, int r0, int nr, float* col) {
  if (s.k == 1) return {xb + static_cast<size_t>(r0) * s.w, s.h * s.w};
  im2col_tile(xb, channels, s.h, s.w, s.k, r0, nr, col);
  return {col, nr * s.w};
}

// y [c_out, ncols] with leading dimension ld: add bias (may be null), then ReLU if asked.
void epilogue(float* y, int c_out, int ncols, int ld, const float* bias, bool relu) {
  if (!bias && !relu) return;
  for (int o = 0; o < c_out; ++o) {
    float* row = y + static_cast<size_t>(o) * ld;
    const float b = bias ? bias[o] : 0.f;
    if (relu) {
      for (int j = 0; j < ncols; ++j) {
        float v = row[j] + b;
        row[j] = v < 0.f ? 0.f : v;  // NaN < 0 is false: NaN propagates
      }
    } else {
      for (int j = 0; j < ncols; ++j) row[j] += b;
    }
  }
}

// The forward convolution of conv2d.h with weights given as the matrix wmat [c_out, c_in*k*k].
// cols: `threads` tiles of tiling(s, s.c_in).col floats.
void forward_core(const Conv2dShape& s, const float* x, const float* wmat, const float* bias, float* y, bool relu,
                  float* cols, int threads) {
  const Tiling t = tiling(s, s.c_in);
  const int plane = s.h * s.w, items = s.n * t.tiles;
  blas_single_threaded();
#pragma omp parallel num_threads(std::min(threads, items))
  {
    float* col = cols + static_cast<size_t>(omp_get_thread_num()) * t.col;
#pragma omp for schedule(dynamic, 1)
    for (int it = 0; it < items; ++it) {
      const int b = it / t.tiles, r0 = (it % t.tiles) * t.rows, nr = std::min(t.rows, s.h - r0);
      const float* xb = x + static_cast<size_t>(b) * s.c_in * plane;               // [c_in,h,w]
      float* yt = y + static_cast<size_t>(b) * s.c_out * plane + static_cast<size_t>(r0) * s.w;  // [c_out, nr*w], ld h*w
      const Cols c = item_cols(s, s.c_in, xb, r0, nr, col);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.c_out, nr * s.w, t.K, 1.f, wmat, t.K, c.data, c.ld,
                  0.f, yt, plane);
      epilogue(yt, s.c_out, nr * s.w, plane, bias, relu);
    }
  }
}

// im2col path workspace: flipped weights (backward data) or the weight-gradient partial sums
// (backward weights), then one col tile per thread for the widest im2col (over c_in forward,
// c_out backward data).
size_t gemm_head_floats(const Conv2dShape& s) {
  return std::max(flipped_floats(s), align16(kWeightChunks * dweight_floats(s)));
}
size_t gemm_col_floats(const Conv2dShape& s) { return std::max(tiling(s, s.c_in).col, tiling(s, s.c_out).col); }

void check_workspace(const Conv2dShape& s, const float* workspace, const char* op) {
  if (conv2d_workspace_floats(s) > 0) check_not_null(workspace, op, "workspace");
}

// im2col path of conv2d_backward_weights: dweight [c_out, c_in*k*k] = sum over items of
// dy_tile [c_out, nr*w] * col^T [nr*w, c_in*k*k], in fixed chunks of items reduced in order.
void gemm_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight, float* workspace) {
  const Tiling t = tiling(s, s.c_in);
  const int plane = s.h * s.w, items = s.n * t.tiles;
  const int chunks = std::min(kWeightChunks, items);
  const size_t nw = dweight_floats(s);
  float* partial = workspace;  // [chunks, c_out, c_in*k*k]
  float* cols = workspace + gemm_head_floats(s);
  blas_single_threaded();
#pragma omp parallel num_threads(std::min(team_size(s), chunks))
  {
    float* col = cols + static_cast<size_t>(omp_get_thread_num()) * t.col;
    // Chunk q sums items [q*items/chunks, (q+1)*items/chunks) in order into partial q.
#pragma omp for schedule(dynamic, 1)
    for (int q = 0; q < chunks; ++q) {
      float* pq = partial + static_cast<size_t>(q) * nw;
      float beta = 0.f;  // the chunk's first GEMM overwrites its partial, the rest accumulate
      for (int it = q * items / chunks; it < (q + 1) * items / chunks; ++it) {
        const int b = it / t.tiles, r0 = (it % t.tiles) * t.rows, nr = std::min(t.rows, s.h - r0);
        const float* xb = x + static_cast<size_t>(b) * s.c_in * plane;  // [c_in,h,w]
        const float* dyt = dy + static_cast<size_t>(b) * s.c_out * plane + static_cast<size_t>(r0) * s.w;
        const Cols c = item_cols(s, s.c_in, xb, r0, nr, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.c_out, t.K, nr * s.w, 1.f, dyt, plane, c.data, c.ld,
                    beta, pq, t.K);
        beta = 1.f;
      }
    }
    direct::sum_partials(partial, chunks, nw, dweight);
  }
}

}  // namespace

int conv_threads() {
  static const int threads = std::max(1, omp_get_max_threads());
  return threads;
}

int conv_team_size(double macs) { return macs >= kParallelMinMacs ? conv_threads() : 1; }

void conv_bias_gradient(const Conv2dShape& s, const float* dy, float* dbias, int threads) {
  const size_t plane = static_cast<size_t>(s.h) * s.w;
#pragma omp parallel for schedule(static) num_threads(std::max(1, std::min(threads, s.c_out)))
  for (int o = 0; o < s.c_out; ++o) {
    double sum = 0.0;
    for (int b = 0; b < s.n; ++b) {
      const float* row = dy + (static_cast<size_t>(b) * s.c_out + o) * plane;
      for (size_t i = 0; i < plane; ++i) sum += row[i];
    }
    dbias[o] = static_cast<float>(sum);
  }
}

namespace {
// Whether the entries below take the frequency-domain path for s (Conv2dShape::algo; Auto asks
// the cost model of conv2d_fft.cpp). Every entry and conv2d_workspace_floats decide the same way.
bool use_fft(const Conv2dShape& s, const char* op) {
  switch (s.algo) {
    case Conv2dAlgo::Direct: return false;
    case Conv2dAlgo::Fft: return true;
    case Conv2dAlgo::Auto: return conv2d_fft_preferred(s);
  }
  fail(op, ": unknown Conv2dAlgo value ", static_cast<int>(s.algo));
}
}  // namespace

size_t conv2d_workspace_floats(const Conv2dShape& s) {
  const char* op = "conv2d_workspace_floats";
  check_conv2d_shape(s, op);
  if (use_fft(s, op)) return conv2d_fft_workspace_floats(s);
  if (direct::supported(s)) {
    Conv2dShape t = s;  // backward data runs the forward kernel with c_in and c_out swapped
    std::swap(t.c_in, t.c_out);
    return std::max({direct::forward_workspace_floats(s, conv_threads()),
                     direct::forward_workspace_floats(t, conv_threads()),
                     direct::backward_weights_workspace_floats(s, conv_threads())});
  }
  return gemm_head_floats(s) + gemm_col_floats(s) * static_cast<size_t>(conv_threads());
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                    bool fuse_relu, float* workspace) {
  const char* op = "conv2d_forward";
  check_conv2d_shape(s, op);
  if (use_fft(s, op)) return conv2d_fft_forward(s, x, weight, bias, y, fuse_relu, workspace);
  check_not_null(x, op, "x");
  check_not_null(weight, op, "weight");
  check_not_null(y, op, "y");
  check_workspace(s, workspace, op);
  if (direct::supported(s)) return direct::forward(s, x, weight, false, bias, y, fuse_relu, workspace, team_size(s));
  // weight [c_out,c_in,k,k] is already the row-major matrix [c_out, c_in*k*k].
  forward_core(s, x, weight, bias, y, fuse_relu, workspace + gemm_head_floats(s), team_size(s));
}

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx, float* workspace) {
  const char* op = "conv2d_backward_data";
  check_conv2d_shape(s, op);
  if (use_fft(s, op)) return conv2d_fft_backward_data(s, dy, weight, dx, workspace);
  check_not_null(dy, op, "dy");
  check_not_null(weight, op, "weight");
  check_not_null(dx, op, "dx");
  check_workspace(s, workspace, op);
  Conv2dShape t = s;
  std::swap(t.c_in, t.c_out);
  if (direct::supported(s)) return direct::forward(t, dy, weight, true, nullptr, dx, false, workspace, team_size(s));
  const int kk = s.k * s.k;
  // wf [c_in, c_out, k, k] = weight[o, c, k-1-u, k-1-v]
  float* wf = workspace;
  for (int c = 0; c < s.c_in; ++c)
    for (int o = 0; o < s.c_out; ++o) {
      const float* src = weight + (static_cast<size_t>(o) * s.c_in + c) * kk;
      float* dst = wf + (static_cast<size_t>(c) * s.c_out + o) * kk;
      for (int t = 0; t < kk; ++t) dst[t] = src[kk - 1 - t];  // (u,v) -> (k-1-u, k-1-v) reverses the k*k block
    }
  forward_core(t, dy, wf, nullptr, dx, false, workspace + gemm_head_floats(s), team_size(s));
}

void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight, float* dbias,
                             float* workspace) {
  const char* op = "conv2d_backward_weights";
  check_conv2d_shape(s, op);
  if (use_fft(s, op)) return conv2d_fft_backward_weights(s, x, dy, dweight, dbias, workspace);
  check_not_null(x, op, "x");
  check_not_null(dy, op, "dy");
  check_not_null(dweight, op, "dweight");
  check_workspace(s, workspace, op);
  if (direct::supported(s))
    direct::backward_weights(s, x, dy, dweight, workspace, team_size(s));
  else
    gemm_backward_weights(s, x, dy, dweight, workspace);
  if (dbias) conv_bias_gradient(s, dy, dbias, team_size(s));
}

}  // namespace isonet::cpu
