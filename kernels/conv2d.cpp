// conv2d.cpp: CPU twin of the 'same' 2D convolution (conv2d.h) as im2col + OpenBLAS sgemm.
//
// Forward, per image, per tile of output rows [r0, r0+nr):
//   col [c_in*k*k, nr*w] = im2col(x)           (OpenMP over the rows of col)
//   y[:, r0*w ...] [c_out, nr*w] = W [c_out, c_in*k*k] * col     (sgemm, threaded by OpenBLAS)
// then bias and ReLU on the tile while it is in cache. Tiling keeps col near the caches: a whole
// 128x128 image with 48 channels and k=7 would be a 150 MB col matrix, written and read again.
// 1x1 convolutions skip im2col: x itself is the [c_in, h*w] matrix.
//
// Backward data is the same forward core: dx = conv(dy, W') with W'[c,o,u,v] = W[o,c,k-1-u,k-1-v]
// (the transposed convolution of a 'same' stride-1 conv is a 'same' conv with the flipped kernel).
// That keeps the GEMM well shaped (K = c_out*k*k, not c_out) and needs no col2im scatter.
// Backward weights: dW [c_out, c_in*k*k] = sum over images and tiles of dy_tile * col_tile^T.
//
// sgemm is never called inside an OpenMP region: OpenBLAS threads its GEMM itself.
#include "kernels/conv2d.h"

#include <cblas.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu_parallel.h"
#include "kernels/op_checks.h"

namespace isonet::cpu {

namespace {

// Target size of one im2col tile in floats (4 MiB): large enough that each GEMM has thousands of
// columns, small enough to stay mostly in the last-level cache.
constexpr size_t kColTileFloats = size_t(1) << 20;

// Keeps the col buffer 64-byte aligned after the flipped weights.
size_t align16(size_t floats) { return (floats + 15) / 16 * 16; }

// Output rows per tile when the im2col matrix has `col_rows` rows of width w.
int tile_rows(int col_rows, int h, int w) {
  size_t per_row = static_cast<size_t>(col_rows) * static_cast<size_t>(w);
  size_t r = kColTileFloats / per_row;
  return static_cast<int>(std::clamp<size_t>(r, 1, static_cast<size_t>(h)));
}

// Floats of the col buffer for an im2col over `channels` input channels (0 for 1x1 kernels).
size_t col_floats(const Conv2dShape& s, int channels) {
  if (s.k == 1) return 0;
  int col_rows = channels * s.k * s.k;
  return static_cast<size_t>(col_rows) * static_cast<size_t>(tile_rows(col_rows, s.h, s.w)) * s.w;
}

// col [c*k*k, nr*w] for output rows [r0, r0+nr) of one image x [c,h,w]:
// col[(ch*k + u)*k + v][i*w + j] = x[ch][r0+i+u-k/2][j+v-k/2], 0 outside the image.
void im2col_tile(const float* x, int c, int h, int w, int k, int r0, int nr, float* col) {
  const int pad = k / 2, rows = c * k * k;
  const size_t ncols = static_cast<size_t>(nr) * w, plane = static_cast<size_t>(h) * w;
#pragma omp parallel for schedule(static) if (rows * ncols >= kParallelMinElements)
  for (int r = 0; r < rows; ++r) {
    const int ch = r / (k * k), u = (r / k) % k, v = r % k;
    const int dj = v - pad;  // source column = j + dj
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

// y [c_out, ncols] with leading dimension ld: add bias (may be null), then ReLU if asked.
void epilogue(float* y, int c_out, size_t ncols, size_t ld, const float* bias, bool relu) {
  if (!bias && !relu) return;
#pragma omp parallel for schedule(static) if (c_out * ncols >= kParallelMinElements)
  for (int o = 0; o < c_out; ++o) {
    float* row = y + o * ld;
    const float b = bias ? bias[o] : 0.f;
    if (relu) {
      for (size_t j = 0; j < ncols; ++j) {
        float v = row[j] + b;
        row[j] = v < 0.f ? 0.f : v;  // NaN < 0 is false: NaN propagates
      }
    } else {
      for (size_t j = 0; j < ncols; ++j) row[j] += b;
    }
  }
}

// The forward convolution of conv2d.h with weights given as the matrix wmat [c_out, c_in*k*k].
// col: col_floats(s, s.c_in) floats.
void forward_core(const Conv2dShape& s, const float* x, const float* wmat, const float* bias, float* y, bool relu,
                  float* col) {
  const size_t plane = static_cast<size_t>(s.h) * s.w;
  const int K = s.c_in * s.k * s.k;
  const int nr_max = tile_rows(K, s.h, s.w);
  for (int b = 0; b < s.n; ++b) {
    const float* xb = x + static_cast<size_t>(b) * s.c_in * plane;  // [c_in,h,w]
    float* yb = y + static_cast<size_t>(b) * s.c_out * plane;       // [c_out,h,w]
    if (s.k == 1) {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.c_out, static_cast<int>(plane), K, 1.f, wmat, K, xb,
                  static_cast<int>(plane), 0.f, yb, static_cast<int>(plane));
      epilogue(yb, s.c_out, plane, plane, bias, relu);
      continue;
    }
    for (int r0 = 0; r0 < s.h; r0 += nr_max) {
      const int nr = std::min(nr_max, s.h - r0);
      const int ncols = nr * s.w;
      im2col_tile(xb, s.c_in, s.h, s.w, s.k, r0, nr, col);
      float* yt = yb + static_cast<size_t>(r0) * s.w;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s.c_out, ncols, K, 1.f, wmat, K, col, ncols, 0.f, yt,
                  static_cast<int>(plane));
      epilogue(yt, s.c_out, ncols, plane, bias, relu);
    }
  }
}

void check_workspace(const Conv2dShape& s, const float* workspace, const char* op) {
  if (conv2d_workspace_floats(s) > 0) check_not_null(workspace, op, "workspace");
}

}  // namespace

size_t conv2d_workspace_floats(const Conv2dShape& s) {
  check_conv2d_shape(s, "conv2d_workspace_floats");
  // Flipped weights for the backward data pass, then one col tile for the widest im2col.
  const size_t flipped = align16(static_cast<size_t>(s.c_in) * s.c_out * s.k * s.k);
  return flipped + std::max(col_floats(s, s.c_in), col_floats(s, s.c_out));
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                    bool fuse_relu, float* workspace) {
  const char* op = "conv2d_forward";
  check_conv2d_shape(s, op);
  check_not_null(x, op, "x");
  check_not_null(weight, op, "weight");
  check_not_null(y, op, "y");
  check_workspace(s, workspace, op);
  const size_t flipped = align16(static_cast<size_t>(s.c_in) * s.c_out * s.k * s.k);
  // weight [c_out,c_in,k,k] is already the row-major matrix [c_out, c_in*k*k].
  forward_core(s, x, weight, bias, y, fuse_relu, workspace + flipped);
}

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx, float* workspace) {
  const char* op = "conv2d_backward_data";
  check_conv2d_shape(s, op);
  check_not_null(dy, op, "dy");
  check_not_null(weight, op, "weight");
  check_not_null(dx, op, "dx");
  check_workspace(s, workspace, op);
  const int k = s.k, kk = k * k;
  // wf [c_in, c_out, k, k] = weight[o, c, k-1-u, k-1-v]
  float* wf = workspace;
  for (int c = 0; c < s.c_in; ++c)
    for (int o = 0; o < s.c_out; ++o) {
      const float* src = weight + (static_cast<size_t>(o) * s.c_in + c) * kk;
      float* dst = wf + (static_cast<size_t>(c) * s.c_out + o) * kk;
      for (int t = 0; t < kk; ++t) dst[t] = src[kk - 1 - t];  // (u,v) -> (k-1-u, k-1-v) reverses the k*k block
    }
  Conv2dShape t = s;
  std::swap(t.c_in, t.c_out);
  const size_t flipped = align16(static_cast<size_t>(s.c_in) * s.c_out * kk);
  forward_core(t, dy, wf, nullptr, dx, false, workspace + flipped);
}

void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight, float* dbias,
                             float* workspace) {
  const char* op = "conv2d_backward_weights";
  check_conv2d_shape(s, op);
  check_not_null(x, op, "x");
  check_not_null(dy, op, "dy");
  check_not_null(dweight, op, "dweight");
  check_workspace(s, workspace, op);
  const size_t plane = static_cast<size_t>(s.h) * s.w;
  const int K = s.c_in * s.k * s.k;
  const int nr_max = s.k == 1 ? s.h : tile_rows(K, s.h, s.w);
  float* col = workspace + align16(static_cast<size_t>(s.c_in) * s.c_out * s.k * s.k);
  float beta = 0.f;  // the first GEMM overwrites dweight, the rest accumulate
  for (int b = 0; b < s.n; ++b) {
    const float* xb = x + static_cast<size_t>(b) * s.c_in * plane;    // [c_in,h,w]
    const float* dyb = dy + static_cast<size_t>(b) * s.c_out * plane;  // [c_out,h,w]
    for (int r0 = 0; r0 < s.h; r0 += nr_max) {
      const int nr = std::min(nr_max, s.h - r0);
      const int ncols = nr * s.w;
      const float* cols = xb;  // 1x1: x itself is [c_in, h*w]
      int ldc = static_cast<int>(plane);
      if (s.k > 1) {
        im2col_tile(xb, s.c_in, s.h, s.w, s.k, r0, nr, col);
        cols = col;
        ldc = ncols;
      }
      // dW [c_out, K] (+)= dy_tile [c_out, ncols] * cols^T [ncols, K]
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s.c_out, K, ncols, 1.f,
                  dyb + static_cast<size_t>(r0) * s.w, static_cast<int>(plane), cols, ldc, beta, dweight, K);
      beta = 1.f;
    }
  }
  if (dbias) {
    // Double accumulation: n*h*w terms (262144 for a batch of 16 128x128 patches).
#pragma omp parallel for schedule(static)
    for (int o = 0; o < s.c_out; ++o) {
      double sum = 0.0;
      for (int b = 0; b < s.n; ++b) {
        const float* row = dy + (static_cast<size_t>(b) * s.c_out + o) * plane;
        for (size_t i = 0; i < plane; ++i) sum += row[i];
      }
      dbias[o] = static_cast<float>(sum);
    }
  }
}

}  // namespace isonet::cpu
