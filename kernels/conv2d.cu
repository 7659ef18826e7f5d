// conv2d.cu: CUDA kernels for the 'same' stride-1 2D convolution (conv2d.h), fp32 FFMA throughout
// (no TF32), so the results stay within fp32 summation-order error of the CPU twin; and the
// dispatch of the three passes to these kernels, the TF32 ones or the FFT path.
//
// Forward and backward-data share one tiled direct-convolution kernel, conv_tiled<K, FLIP>:
//   * a block computes a 16x32 output tile of one image for co_t = 8*G output channels
//     (G = 1..4 channel groups of 64 threads; blockDim = 64*G);
//   * input channels are consumed in chunks of CI: the input tile with its halo
//     [CI][16+K-1][32+K(pad)] and the weights [CI][K][K][co_t] are staged in shared memory
//     (zero outside the image: that is the 'same' padding);
//   * each thread keeps 8 consecutive output pixels of one row x 8 output channels (64
//     accumulators) in registers; per (ci, u) it loads a row segment of 8+K-1 inputs and, per v,
//     8 weights as two broadcast float4 loads, then does 64 FMAs;
//   * staging issues 8 independent global loads per thread before storing them to shared memory,
//     so memory latencies overlap (stage());
//   * epilogue: + bias, optional ReLU, guarded stores.
//   * split-K when the grid is small (32x32 layers: too few 8x8-output threads to fill the GPU):
//     the input-channel chunks are divided among `splits` blocks per output tile, each writes raw
//     partial sums to the workspace, and conv_split_reduce adds them in a fixed order and applies
//     the epilogue (deterministic; no atomics).
// Backward data is the same kernel with FLIP = true: dx = conv(dy, W') where
// W'[c][o][u][v] = W[o][c][K-1-u][K-1-v], read straight from W by the staging loop (no copy).
//
// Backward weights, conv_wgrad_tiled<K>: dW[o][c][u][v] = sum_{n,y,x} dy[n,o,y,x] x[n,c,y+u-K/2,x+v-K/2]
// is a reduction over n*h*w. The reduction is cut into tiles of 8x32 pixels, and the tiles into S
// contiguous slices. A block owns (a slice, a chunk of CI input channels, co_t <= 16 output
// channels); it stages dy [co_t][8][32] and x with halo [CI][8+K-1][32+K] per tile, and each
// thread owns one (c, u) pair, 8 output channels and all K v's (8*K accumulators), visiting the
// tile rows r, r+R, ... (R row phases per block). Per 4 pixels it loads 8 broadcast float4 of dy
// and 4 new x values of a sliding window, then does 32*K FMAs. Each (slice, phase) writes its
// partial dW to the workspace; conv_wgrad_reduce sums the partials in a fixed order. No float
// atomics anywhere: the result is bitwise reproducible run to run. dbias is a separate two-level
// sum of dy (double inside a block, stored as a float hi+lo pair, summed in order in double).
//
// Other odd K (11, 13, ...) fall back to simple direct kernels (one output per thread, global
// memory): correct, not fast. IsoNet-2 uses K = 7 and 1.
//
// Conv2dMath::Tf32 sends forward, backward data (k <= 13) and backward weights (k <= 9) to the
// tensor-core kernels of conv2d_tf32.cu; dbias stays the fp32 sum below.
// Conv2dAlgo::Fft sends forward and backward data to the frequency-domain path (conv2d_fft.cu);
// backward weights is always the direct kernel here. Auto is direct (see use_fft).
#include "kernels/conv2d.h"

#include <algorithm>
#include <climits>

#include "kernels/conv2d_fft.h"
#include "kernels/conv2d_gpu.h"
#include "kernels/cuda_launch.h"
#include "kernels/device.h"
#include "kernels/op_checks.h"

namespace isonet::gpu {

namespace {

// ---------------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------------

constexpr int round_up4(int x) { return (x + 3) / 4 * 4; }
constexpr long long ceil_div_ll(long long a, long long b) { return (a + b - 1) / b; }

// Roughly the number of resident threads an H100 (132 SMs x 2048) holds: the grids below aim to
// fill it. A heuristic only; any device runs any grid.
constexpr int kTargetBlocks = 264;          // 2 per SM of a 132-SM H100
constexpr long long kTargetThreads = 1 << 18;

// Output channels per block: spread c_out over as few tiles as max_groups allows, with groups of 8
// as even as possible (c_out = 33 -> 2 tiles of 24, not 32 + 1).
struct ChannelTiling {
  int groups, co_t, tiles;
};
ChannelTiling channel_tiling(int cout, int max_groups) {
  const int max_co = 8 * max_groups;
  const int tiles0 = ceil_div(cout, max_co);
  ChannelTiling t;
  t.groups = ceil_div(ceil_div(cout, tiles0), 8);
  t.co_t = 8 * t.groups;
  t.tiles = ceil_div(cout, t.co_t);
  return t;
}

// ---------------------------------------------------------------------------------------------
// Forward / backward data: tiled kernel
// ---------------------------------------------------------------------------------------------

constexpr int kTH = 16, kTW = 32;  // output tile
constexpr int kRP = 8;             // consecutive output pixels per thread (along x)
constexpr int kRC = 8;             // output channels per thread
constexpr int kGroupThreads = (kTW / kRP) * kTH;  // 64 threads cover the tile for one channel group
constexpr int kMaxGroups = 4;                     // co_t <= 32, blockDim <= 256

template <int K>
struct FwdCfg {
  // Input channels per shared-memory chunk: sized so the staged tile + weights stay under 48 KB.
  static constexpr int CI = K == 1 ? 16 : K == 3 ? 8 : K == 5 ? 6 : K == 7 ? 4 : 3;
  static constexpr int IN_H = kTH + K - 1;
  static constexpr int IN_W = kTW + K;  // one column of padding: an odd row stride is bank-conflict free
  static constexpr int IN_PLANE = IN_H * IN_W;
  static constexpr int W_OFFSET = round_up4(CI * IN_PLANE);  // weights start 16-byte aligned
  static constexpr int smem_floats(int co_t) { return W_OFFSET + CI * K * K * co_t; }
  static_assert(W_OFFSET + CI * K * K * 8 * kMaxGroups <= 48 * 1024 / 4, "conv tile exceeds 48 KB of shared memory");
};

int fwd_ci_chunk(int k) {
  switch (k) {
    case 1: return FwdCfg<1>::CI;
    case 3: return FwdCfg<3>::CI;
    case 5: return FwdCfg<5>::CI;
    case 7: return FwdCfg<7>::CI;
    case 9: return FwdCfg<9>::CI;
    default: return 0;  // direct fallback
  }
}

// Below this many threads in total (16 warps per SM of an H100) the input channels are split over
// blocks (split-K): a 32x32 layer of batch 16 has only 8-16k threads of 8x8 outputs otherwise.
constexpr long long kConvTargetThreads = 1 << 16;
constexpr int kMaxSplits = 8;

// How a forward (or backward-data) convolution is cut into blocks; a pure function of the shape,
// so the workspace size and the summation order depend on nothing else.
struct ConvPlan {
  bool tiled = false;
  ChannelTiling ch{};
  int tiles_x = 0, tiles_y = 0;
  int chunks = 0;            // input-channel chunks of CI channels
  int splits = 1;            // split-K factor: blocks per output tile, each over a range of chunks
  int chunks_per_split = 0;
  long long blocks = 0;
  size_t out_floats = 0;     // n * cout * h * w
  size_t workspace_floats() const { return splits > 1 ? static_cast<size_t>(splits) * out_floats : 0; }
};

// The plan for the convolution "in [n,cin,h,w] -> out [n,cout,h,w]" with kernel size k.
ConvPlan plan_conv(int n, int cin, int cout, int h, int w, int k) {
  ConvPlan p;
  p.out_floats = static_cast<size_t>(n) * cout * h * w;
  const int ci = fwd_ci_chunk(k);
  if (ci == 0) return p;
  p.tiled = true;
  p.tiles_x = ceil_div(w, kTW);
  p.tiles_y = ceil_div(h, kTH);
  const long long spatial = static_cast<long long>(n) * p.tiles_x * p.tiles_y;
  p.chunks = ceil_div(cin, ci);
  // One thread per 8 pixels x 8 channels, whatever the block shape.
  const long long threads = spatial * kGroupThreads * ceil_div(cout, kRC);
  const long long splits =
      std::clamp<long long>(ceil_div_ll(kConvTargetThreads, threads), 1, std::min(p.chunks, kMaxSplits));
  p.chunks_per_split = static_cast<int>(ceil_div_ll(p.chunks, splits));
  p.splits = ceil_div(p.chunks, p.chunks_per_split);  // no empty split
  p.ch = channel_tiling(cout, kMaxGroups);
  // Few blocks (small images): trade channel groups per block for more, smaller blocks.
  while (p.ch.groups > 1 && spatial * p.ch.tiles * p.splits < kTargetBlocks)
    p.ch = channel_tiling(cout, p.ch.groups - 1);
  p.blocks = spatial * p.ch.tiles * p.splits;
  return p;
}

// Launch geometry passed to conv_tiled.
struct ConvGrid {
  int co_t, tiles_x, tiles_y, co_tiles, splits, chunks, chunks_per_split;
  float* partial;     // splits > 1: [splits][n][cout][h][w] raw sums; else unused
  size_t out_floats;  // n * cout * h * w
};

// in [n,cin,h,w] (*) weight -> out [n,cout,h,w] (or raw partial sums over this block's range of
// input-channel chunks when g.splits > 1); see the file comment. blockDim.x = 64 * (co_t / 8).
template <int K, bool FLIP>
__global__ void __launch_bounds__(kGroupThreads* kMaxGroups, 2) conv_tiled(ConvArgs a, ConvGrid g) {
  using C = FwdCfg<K>;
  extern __shared__ float4 smem_f4[];
  float* in_s = reinterpret_cast<float*>(smem_f4);  // [CI][IN_H][IN_W]
  float* w_s = in_s + C::W_OFFSET;                  // [CI][K][K][co_t]

  // Block -> (image, split, channel tile, tile row, tile col); the spatial tile varies fastest so
  // neighbouring blocks share their weights in L2.
  unsigned b = blockIdx.x;
  const int tx = static_cast<int>(b % g.tiles_x);
  b /= g.tiles_x;
  const int ty = static_cast<int>(b % g.tiles_y);
  b /= g.tiles_y;
  const int ct = static_cast<int>(b % g.co_tiles);
  b /= g.co_tiles;
  const int ks = static_cast<int>(b % g.splits);
  const int img = static_cast<int>(b / g.splits);
  const int co_t = g.co_t;
  const int x0 = tx * kTW, y0 = ty * kTH, co0 = ct * co_t;

  const int tid = threadIdx.x;
  const int grp = tid / kGroupThreads;  // channel group: a warp never straddles two groups
  const int lt = tid % kGroupThreads;
  const int tcol = lt % (kTW / kRP), trow = lt / (kTW / kRP);

  float acc[kRC][kRP];
#pragma unroll
  for (int o = 0; o < kRC; ++o)
#pragma unroll
    for (int p = 0; p < kRP; ++p) acc[o][p] = 0.f;

  const size_t plane = static_cast<size_t>(a.h) * a.w;
  const float* in_img = a.in + static_cast<size_t>(img) * a.cin * plane;  // [cin,h,w]

  const int kc_end = min((ks + 1) * g.chunks_per_split, g.chunks);
  for (int kc = ks * g.chunks_per_split; kc < kc_end; ++kc) {
    const int ci0 = kc * C::CI;
    const int nci = min(C::CI, a.cin - ci0);
    // Stage the input tile with its halo; zeros outside the image are the 'same' padding.
    detail::stage_shared(in_s, nci * C::IN_PLANE, [&](int idx) {
      const int ci = idx / C::IN_PLANE;
      const int r = idx - ci * C::IN_PLANE;
      const int row = r / C::IN_W, col = r - row * C::IN_W;
      const int gy = y0 + row - K / 2, gx = x0 + col - K / 2;
      return (gy >= 0 && gy < a.h && gx >= 0 && gx < a.w)
                 ? in_img[static_cast<size_t>(ci0 + ci) * plane + static_cast<size_t>(gy) * a.w + gx]
                 : 0.f;
    });
    // Stage the weights as [ci][u][v][o] (o fastest: a thread reads its 8 channels as 2 float4);
    // zeros for channels past cout.
    detail::stage_shared(w_s, nci * K * K * co_t, [&](int idx) {
      const int o = idx % co_t;
      const int r = idx / co_t;
      const int uv = r % (K * K), ci = r / (K * K);
      const int oc = co0 + o;
      return oc < a.cout ? conv_weight<FLIP>(a, K, oc, ci0 + ci, uv / K, uv % K) : 0.f;
    });
    __syncthreads();

    for (int ci = 0; ci < nci; ++ci) {
      const float* in_row = in_s + ci * C::IN_PLANE + trow * C::IN_W + tcol * kRP;
      const float* w_ci = w_s + ci * K * K * co_t + grp * kRC;
#pragma unroll 1
      for (int u = 0; u < K; ++u) {
        float seg[kRP + K - 1];  // inputs of row trow+u under this thread's 8 outputs and their halo
#pragma unroll
        for (int j = 0; j < kRP + K - 1; ++j) seg[j] = in_row[u * C::IN_W + j];
#pragma unroll
        for (int v = 0; v < K; ++v) {
          const float4 wa = *reinterpret_cast<const float4*>(w_ci + (u * K + v) * co_t);
          const float4 wb = *reinterpret_cast<const float4*>(w_ci + (u * K + v) * co_t + 4);
          const float wv[kRC] = {wa.x, wa.y, wa.z, wa.w, wb.x, wb.y, wb.z, wb.w};
#pragma unroll
          for (int o = 0; o < kRC; ++o)
#pragma unroll
            for (int p = 0; p < kRP; ++p) acc[o][p] = fmaf(seg[p + v], wv[o], acc[o][p]);
        }
      }
    }
    __syncthreads();  // the next chunk overwrites the staged tile
  }

  const int oy = y0 + trow;
  if (oy >= a.h) return;
  float* dst = g.splits > 1 ? g.partial + static_cast<size_t>(ks) * g.out_floats : a.out;
#pragma unroll
  for (int o = 0; o < kRC; ++o) {
    const int oc = co0 + grp * kRC + o;
    if (oc >= a.cout) continue;
    float* out_row = dst + (static_cast<size_t>(img) * a.cout + oc) * plane + static_cast<size_t>(oy) * a.w;
#pragma unroll
    for (int p = 0; p < kRP; ++p) {
      const int ox = x0 + tcol * kRP + p;
      if (ox < a.w) out_row[ox] = g.splits > 1 ? acc[o][p] : conv_epilogue(acc[o][p], a, oc);
    }
  }
}

// Split-K: out [n,cout,h,w] = epilogue(sum over splits, in order, of partial [splits][n,cout,h,w]).
__global__ void conv_split_reduce(ConvArgs a, const float* partial, int splits, size_t out_floats) {
  const size_t plane = static_cast<size_t>(a.h) * a.w;
  detail::grid_stride(out_floats, [&](size_t e) {
    float s = partial[e];
    for (int k = 1; k < splits; ++k) s += partial[static_cast<size_t>(k) * out_floats + e];
    a.out[e] = conv_epilogue(s, a, static_cast<int>((e / plane) % a.cout));
  });
}

}  // namespace

void launch_conv_split_reduce(const ConvArgs& a, const float* partial, int splits, size_t out_floats,
                              cudaStream_t stream, const char* op) {
  conv_split_reduce<<<detail::grid_for(out_floats), detail::kBlock, 0, stream>>>(a, partial, splits, out_floats);
  CUDA_CHECK_LAUNCH(op);
}

namespace {

template <int K, bool FLIP>
void launch_conv_tiled(const ConvArgs& a, const ConvPlan& p, float* workspace, cudaStream_t stream,
                       const char* op) {
  ISONET_CHECK(p.blocks <= INT_MAX, op, ": too many tiles (", p.blocks, ")");
  if (p.splits > 1) check_not_null(workspace, op, "workspace");
  const ConvGrid g{p.ch.co_t, p.tiles_x, p.tiles_y, p.ch.tiles, p.splits, p.chunks, p.chunks_per_split,
                   workspace, p.out_floats};
  const size_t smem = sizeof(float) * FwdCfg<K>::smem_floats(p.ch.co_t);
  conv_tiled<K, FLIP><<<static_cast<unsigned>(p.blocks), kGroupThreads * p.ch.groups, smem, stream>>>(a, g);
  CUDA_CHECK_LAUNCH(op);
  if (p.splits > 1) launch_conv_split_reduce(a, workspace, p.splits, p.out_floats, stream, op);
}

// Any odd k: one output element per thread, straight from global memory.
template <bool FLIP>
__global__ void conv_direct(ConvArgs a) {
  const size_t plane = static_cast<size_t>(a.h) * a.w;
  const int k = a.k, pad = a.k / 2;
  detail::grid_stride(static_cast<size_t>(a.n) * a.cout * plane, [&](size_t e) {
    const size_t img_ch = e / plane;
    const int pix = static_cast<int>(e - img_ch * plane);
    const int img = static_cast<int>(img_ch / a.cout), oc = static_cast<int>(img_ch % a.cout);
    const int y = pix / a.w, x = pix - y * a.w;
    float acc = 0.f;
    for (int ic = 0; ic < a.cin; ++ic) {
      const float* in_c = a.in + (static_cast<size_t>(img) * a.cin + ic) * plane;
      for (int u = 0; u < k; ++u) {
        const int gy = y + u - pad;
        if (gy < 0 || gy >= a.h) continue;
        for (int v = 0; v < k; ++v) {
          const int gx = x + v - pad;
          if (gx < 0 || gx >= a.w) continue;
          acc = fmaf(in_c[static_cast<size_t>(gy) * a.w + gx], conv_weight<FLIP>(a, k, oc, ic, u, v), acc);
        }
      }
    }
    a.out[e] = conv_epilogue(acc, a, oc);
  });
}

template <bool FLIP>
void run_conv(const ConvArgs& a, float* workspace, cudaStream_t stream, const char* op) {
  const ConvPlan p = plan_conv(a.n, a.cin, a.cout, a.h, a.w, a.k);
  switch (a.k) {
    case 1: return launch_conv_tiled<1, FLIP>(a, p, workspace, stream, op);
    case 3: return launch_conv_tiled<3, FLIP>(a, p, workspace, stream, op);
    case 5: return launch_conv_tiled<5, FLIP>(a, p, workspace, stream, op);
    case 7: return launch_conv_tiled<7, FLIP>(a, p, workspace, stream, op);
    case 9: return launch_conv_tiled<9, FLIP>(a, p, workspace, stream, op);
    default:
      conv_direct<FLIP><<<detail::grid_for(static_cast<size_t>(a.n) * a.cout * a.h * a.w), detail::kBlock, 0,
                          stream>>>(a);
      CUDA_CHECK_LAUNCH(op);
  }
}

// ---------------------------------------------------------------------------------------------
// Backward weights
// ---------------------------------------------------------------------------------------------

constexpr int kWTH = 8, kWTW = 32;  // reduction tile (pixels)
constexpr int kWMaxGroups = 2;      // co_t <= 16
constexpr int kWMaxThreads = 256;
constexpr size_t kMaxPartialFloats = size_t(8) << 20;  // 32 MB of dW partials at most (when the shape allows)
constexpr int kMaxPartials = 4096;

template <int K>
struct WgradCfg {
  static constexpr int CI = K == 1 ? 16 : K == 3 ? 16 : K == 5 ? 8 : K == 7 ? 8 : 4;
  static constexpr int X_H = kWTH + K - 1;
  static constexpr int X_W = kWTW + K;  // odd row stride (see FwdCfg)
  static constexpr int X_PLANE = X_H * X_W;
  static constexpr int DY_FLOATS = 8 * kWMaxGroups * kWTH * kWTW;  // dy tile first: float4-aligned
  static constexpr int SMEM_FLOATS = DY_FLOATS + CI * X_PLANE;
  static_assert(SMEM_FLOATS <= 48 * 1024 / 4, "wgrad tile exceeds 48 KB of shared memory");
};

// How the reduction is split; a pure function of the shape, so the workspace size and the
// summation order (hence the bits of the result) depend on nothing else.
struct WgradPlan {
  bool tiled = false;
  int ci_t = 0, ci_tiles = 0, np = 0, R = 0, threads = 0;
  ChannelTiling ch{};
  int tiles_x = 0, tiles_y = 0;
  long long tiles = 0, tiles_per_slice = 0;
  int slices = 0, partials = 0;  // partials = slices * R
  size_t dw = 0;                 // c_out * c_in * k * k
  int bias_pchunks = 0;          // bias partial chunks per image
  size_t bias_partials = 0;      // per output channel: n * bias_pchunks
};

constexpr int kBiasChunk = 4096;  // pixels per dbias partial block

int wgrad_ci_chunk(int k) {
  switch (k) {
    case 1: return WgradCfg<1>::CI;
    case 3: return WgradCfg<3>::CI;
    case 5: return WgradCfg<5>::CI;
    case 7: return WgradCfg<7>::CI;
    case 9: return WgradCfg<9>::CI;
    default: return 0;  // direct fallback
  }
}

WgradPlan plan_wgrad(const Conv2dShape& s) {
  WgradPlan p;
  p.dw = static_cast<size_t>(s.c_out) * s.c_in * s.k * s.k;
  const size_t plane = static_cast<size_t>(s.h) * s.w;
  p.bias_pchunks = static_cast<int>((plane + kBiasChunk - 1) / kBiasChunk);
  p.bias_partials = static_cast<size_t>(s.n) * p.bias_pchunks;
  const int ci_chunk = wgrad_ci_chunk(s.k);
  if (ci_chunk == 0) return p;
  p.tiled = true;
  p.ci_t = std::min(ci_chunk, s.c_in);
  p.ci_tiles = ceil_div(s.c_in, p.ci_t);
  p.ch = channel_tiling(s.c_out, kWMaxGroups);
  p.np = p.ci_t * s.k;
  p.R = 8;
  while (p.R > 1 && p.np * p.ch.groups * p.R > kWMaxThreads) p.R /= 2;
  p.threads = p.np * p.ch.groups * p.R;
  p.tiles_x = ceil_div(s.w, kWTW);
  p.tiles_y = ceil_div(s.h, kWTH);
  p.tiles = static_cast<long long>(s.n) * p.tiles_x * p.tiles_y;
  const long long base_blocks = static_cast<long long>(p.ch.tiles) * p.ci_tiles;
  long long slices = ceil_div_ll(kTargetThreads, base_blocks * p.threads);
  const long long max_partials = std::max<long long>(
      p.R, std::min<long long>(kMaxPartials, static_cast<long long>(kMaxPartialFloats / p.dw)));
  slices = std::clamp<long long>(slices, 1, std::min<long long>(p.tiles, max_partials / p.R));
  p.tiles_per_slice = ceil_div_ll(p.tiles, slices);
  p.slices = static_cast<int>(ceil_div_ll(p.tiles, p.tiles_per_slice));  // no empty slice
  p.partials = p.slices * p.R;
  return p;
}

// Which kernel computes dW and how many partial dW it writes (the dbias partials follow them in
// the workspace): the TF32 kernel (Conv2dMath::Tf32, where it has one), else the fp32 tiled kernel,
// else the direct fallback, which writes dW itself (0 partials).
struct WgradKernel {
  bool tf32 = false;
  int partials = 0;
};
WgradKernel wgrad_kernel(const WgradPlan& p, const Conv2dShape& s) {
  if (s.math == Conv2dMath::Tf32 && tf32_device_supported()) {
    const int tf32 = conv_wgrad_tf32_partials(s.n, s.c_in, s.c_out, s.h, s.w, s.k);
    if (tf32 > 0) return {true, tf32};
  }
  return {false, p.tiled ? p.partials : 0};
}

size_t wgrad_workspace_floats(const WgradPlan& p, int partials, const Conv2dShape& s) {
  const size_t bias = 2 * static_cast<size_t>(s.c_out) * p.bias_partials;  // hi + lo pairs
  return static_cast<size_t>(partials) * p.dw + bias;
}

struct WgradArgs {
  const float* x;   // [n, cin, h, w]
  const float* dy;  // [n, cout, h, w]
  float* partial;   // [partials][cout][cin][k][k]
  int n, cin, cout, h, w;
};

// See the file comment. blockDim.x = np * G * R with np = ci_t * K.
template <int K>
__global__ void __launch_bounds__(kWMaxThreads, 2)
    conv_wgrad_tiled(WgradArgs a, int ci_t, int co_t, int groups, int R, int co_tiles, int ci_tiles, int tiles_x,
                     int tiles_y, long long tiles, long long tiles_per_slice) {
  using C = WgradCfg<K>;
  extern __shared__ float4 smem_f4[];
  float* dy_s = reinterpret_cast<float*>(smem_f4);  // [co_t][kWTH][kWTW]
  float* x_s = dy_s + C::DY_FLOATS;                 // [ci_t][X_H][X_W]

  unsigned b = blockIdx.x;
  const int ct = static_cast<int>(b % co_tiles);
  b /= co_tiles;
  const int it = static_cast<int>(b % ci_tiles);
  const int slice = static_cast<int>(b / ci_tiles);
  const int co0 = ct * co_t, ci0 = it * ci_t;
  const int nci = min(ci_t, a.cin - ci0);

  const int np = ci_t * K;
  const int tid = threadIdx.x;
  const int pair = tid % np, rest = tid / np;
  const int g = rest % groups, r = rest / groups;  // channel group, row phase
  const int ci = pair / K, u = pair % K;

  float acc[8][K];
#pragma unroll
  for (int o = 0; o < 8; ++o)
#pragma unroll
    for (int v = 0; v < K; ++v) acc[o][v] = 0.f;

  const size_t plane = static_cast<size_t>(a.h) * a.w;
  const long long t_begin = slice * tiles_per_slice;
  const long long t_end = min(t_begin + tiles_per_slice, tiles);
  for (long long t = t_begin; t < t_end; ++t) {
    const int tx = static_cast<int>(t % tiles_x);
    const int ty = static_cast<int>((t / tiles_x) % tiles_y);
    const int img = static_cast<int>(t / (static_cast<long long>(tiles_x) * tiles_y));
    const int x0 = tx * kWTW, y0 = ty * kWTH;
    // dy tile; zeros outside the image (those pixels are not outputs) and past cout.
    detail::stage_shared(dy_s, co_t * kWTH * kWTW, [&](int idx) {
      const int o = idx / (kWTH * kWTW);
      const int rr = idx - o * (kWTH * kWTW);
      const int row = rr / kWTW, col = rr - row * kWTW;
      const int gy = y0 + row, gx = x0 + col, oc = co0 + o;
      return (oc < a.cout && gy < a.h && gx < a.w)
                 ? a.dy[(static_cast<size_t>(img) * a.cout + oc) * plane + static_cast<size_t>(gy) * a.w + gx]
                 : 0.f;
    });
    // x tile with halo; zeros outside the image ('same' padding) and past this chunk's channels.
    detail::stage_shared(x_s, ci_t * C::X_PLANE, [&](int idx) {
      const int c = idx / C::X_PLANE;
      const int rr = idx - c * C::X_PLANE;
      const int row = rr / C::X_W, col = rr - row * C::X_W;
      const int gy = y0 + row - K / 2, gx = x0 + col - K / 2;
      return (c < nci && gy >= 0 && gy < a.h && gx >= 0 && gx < a.w)
                 ? a.x[(static_cast<size_t>(img) * a.cin + ci0 + c) * plane + static_cast<size_t>(gy) * a.w + gx]
                 : 0.f;
    });
    __syncthreads();

    const float* dy_g = dy_s + g * 8 * (kWTH * kWTW);
    const float* x_p = x_s + ci * C::X_PLANE + u * C::X_W;
    for (int y = r; y < kWTH; y += R) {
      const float* xrow = x_p + y * C::X_W;  // x row y+u of the tile (halo coordinates)
      const float* dyrow = dy_g + y * kWTW;
      float win[K + 3];  // x[xc .. xc+K+2]: the taps of 4 consecutive pixels
#pragma unroll
      for (int j = 0; j < K - 1; ++j) win[j] = xrow[j];
#pragma unroll
      for (int xc = 0; xc < kWTW; xc += 4) {
#pragma unroll
        for (int j = 0; j < 4; ++j) win[K - 1 + j] = xrow[xc + K - 1 + j];
#pragma unroll
        for (int o = 0; o < 8; ++o) {
          const float4 d = *reinterpret_cast<const float4*>(dyrow + o * (kWTH * kWTW) + xc);
#pragma unroll
          for (int v = 0; v < K; ++v) {
            float s = acc[o][v];
            s = fmaf(d.x, win[v], s);
            s = fmaf(d.y, win[v + 1], s);
            s = fmaf(d.z, win[v + 2], s);
            s = fmaf(d.w, win[v + 3], s);
            acc[o][v] = s;
          }
        }
#pragma unroll
        for (int j = 0; j < K - 1; ++j) win[j] = win[j + 4];
      }
    }
    __syncthreads();  // the next tile overwrites the staged data
  }

  if (ci >= nci) return;  // padding pair of the last channel chunk
  const size_t dw = static_cast<size_t>(a.cout) * a.cin * K * K;
  float* out = a.partial + (static_cast<size_t>(slice) * R + r) * dw;
#pragma unroll
  for (int o = 0; o < 8; ++o) {
    const int oc = co0 + g * 8 + o;
    if (oc >= a.cout) continue;
    float* row = out + ((static_cast<size_t>(oc) * a.cin + ci0 + ci) * K + u) * K;
#pragma unroll
    for (int v = 0; v < K; ++v) row[v] = acc[o][v];
  }
}

// dW [dw] = sum over p in 0..partials-1 (in this order per warp) of partial [p][dw]. A block covers
// 32 consecutive elements; its 8 warps take p = w, w+8, ... and warp 0 adds the 8 sums in order.
__global__ void conv_wgrad_reduce(const float* partial, float* dweight, size_t dw, int partials) {
  __shared__ float sums[8][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const size_t e = static_cast<size_t>(blockIdx.x) * 32 + lane;
  float s = 0.f;
  if (e < dw)
    for (int p = warp; p < partials; p += 8) s += partial[static_cast<size_t>(p) * dw + e];
  sums[warp][lane] = s;
  __syncthreads();
  if (warp == 0 && e < dw) {
    float total = sums[0][lane];
#pragma unroll
    for (int w = 1; w < 8; ++w) total += sums[w][lane];
    dweight[e] = total;
  }
}

}  // namespace

void launch_conv_wgrad_reduce(const float* partial, float* dweight, size_t dw, int partials, cudaStream_t stream,
                              const char* op) {
  const size_t blocks = (dw + 31) / 32;
  ISONET_CHECK(blocks <= INT_MAX, op, ": too many weights (", dw, ")");
  conv_wgrad_reduce<<<static_cast<unsigned>(blocks), 256, 0, stream>>>(partial, dweight, dw, partials);
  CUDA_CHECK_LAUNCH(op);
}

namespace {

// Any odd k: one dW element per thread, summing over n, y, x in order (deterministic, slow).
__global__ void conv_wgrad_direct(WgradArgs a, int k, float* dweight) {
  const size_t plane = static_cast<size_t>(a.h) * a.w;
  const int pad = k / 2;
  detail::grid_stride(static_cast<size_t>(a.cout) * a.cin * k * k, [&](size_t e) {
    const int v = static_cast<int>(e % k), u = static_cast<int>((e / k) % k);
    const int ic = static_cast<int>((e / (static_cast<size_t>(k) * k)) % a.cin);
    const int oc = static_cast<int>(e / (static_cast<size_t>(k) * k * a.cin));
    float acc = 0.f;
    for (int img = 0; img < a.n; ++img) {
      const float* dy_c = a.dy + (static_cast<size_t>(img) * a.cout + oc) * plane;
      const float* x_c = a.x + (static_cast<size_t>(img) * a.cin + ic) * plane;
      for (int y = 0; y < a.h; ++y) {
        const int gy = y + u - pad;
        if (gy < 0 || gy >= a.h) continue;
        for (int x = 0; x < a.w; ++x) {
          const int gx = x + v - pad;
          if (gx < 0 || gx >= a.w) continue;
          acc = fmaf(dy_c[static_cast<size_t>(y) * a.w + x], x_c[static_cast<size_t>(gy) * a.w + gx], acc);
        }
      }
    }
    dweight[e] = acc;
  });
}

// dbias, level 1: block (oc, img, chunk) sums dy[img][oc][chunk of kBiasChunk pixels] in double
// and stores it as hi + lo floats at [oc][img*pchunks + chunk].
__global__ void bias_partial_kernel(const float* dy, int cout, size_t plane, int pchunks, size_t partials, float* hi,
                                    float* lo) {
  __shared__ double scratch[32];
  const unsigned b = blockIdx.x;
  const int chunk = static_cast<int>(b % pchunks);
  const int img = static_cast<int>((b / pchunks) / cout), oc = static_cast<int>((b / pchunks) % cout);
  const float* src = dy + (static_cast<size_t>(img) * cout + oc) * plane;
  const size_t begin = static_cast<size_t>(chunk) * kBiasChunk;
  const size_t end = std::min(begin + kBiasChunk, plane);
  double s = 0.0;
  for (size_t i = begin + threadIdx.x; i < end; i += blockDim.x) s += src[i];
  s = detail::block_reduce(s, detail::SumOp{}, 0.0, scratch);
  if (threadIdx.x == 0) {
    const size_t slot = static_cast<size_t>(oc) * partials + static_cast<size_t>(img) * pchunks + chunk;
    const float h = static_cast<float>(s);
    hi[slot] = h;
    lo[slot] = static_cast<float>(s - static_cast<double>(h));
  }
}

// dbias, level 2: dbias[oc] = sum of its partials in order, in double.
__global__ void bias_reduce_kernel(const float* hi, const float* lo, int cout, size_t partials, float* dbias) {
  detail::grid_stride(static_cast<size_t>(cout), [&](size_t oc) {
    double s = 0.0;
    for (size_t p = 0; p < partials; ++p) {
      const size_t slot = oc * partials + p;
      s += static_cast<double>(hi[slot]) + static_cast<double>(lo[slot]);
    }
    dbias[oc] = static_cast<float>(s);
  });
}

template <int K>
void launch_wgrad_tiled(const WgradPlan& p, const WgradArgs& a, cudaStream_t stream, const char* op) {
  const long long blocks = static_cast<long long>(p.slices) * p.ci_tiles * p.ch.tiles;
  ISONET_CHECK(blocks <= INT_MAX, op, ": too many blocks (", blocks, ")");
  conv_wgrad_tiled<K><<<static_cast<unsigned>(blocks), p.threads, sizeof(float) * WgradCfg<K>::SMEM_FLOATS,
                        stream>>>(a, p.ci_t, p.ch.co_t, p.ch.groups, p.R, p.ch.tiles, p.ci_tiles, p.tiles_x,
                                  p.tiles_y, p.tiles, p.tiles_per_slice);
  CUDA_CHECK_LAUNCH(op);
}

ConvArgs forward_args(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                      bool relu) {
  return {x, weight, bias, y, s.n, s.c_in, s.c_out, s.h, s.w, s.k, relu};
}

}  // namespace

size_t conv2d_workspace_floats(const Conv2dShape& s) {
  check_conv2d_shape(s, "conv2d_workspace_floats (cuda)");
  // Split-K partial outputs of the forward / backward data, the partial sums of backward weights.
  const size_t fwd = plan_conv(s.n, s.c_in, s.c_out, s.h, s.w, s.k).workspace_floats();
  const size_t bwd_data = plan_conv(s.n, s.c_out, s.c_in, s.h, s.w, s.k).workspace_floats();
  const WgradPlan wp = plan_wgrad(s);
  size_t direct = std::max({fwd, bwd_data, wgrad_workspace_floats(wp, wgrad_kernel(wp, s).partials, s)});
  // Tf32: forward and backward data on tensor cores (conv2d_tf32.cu), with their own split-K
  // (backward weights' partials are in wgrad_workspace_floats). Sizing is where a network prepares
  // its ops, before any launch or graph capture: the TF32 kernels get their shared memory here.
  if (s.math == Conv2dMath::Tf32 && tf32_device_supported()) {
    direct = std::max({direct, conv_tf32_workspace_floats(s.n, s.c_in, s.c_out, s.h, s.w, s.k),
                       conv_tf32_workspace_floats(s.n, s.c_out, s.c_in, s.h, s.w, s.k)});
    if (cuda_available()) conv_tf32_prepare_device("conv2d_workspace_floats (cuda)");
  }
  // Fft: forward and backward data in the frequency domain, backward weights still direct.
  // (Sizing an Fft shape creates its cuFFT plans: see conv2d_fft.cu.)
  return s.algo == Conv2dAlgo::Fft ? std::max(direct, conv2d_fft_workspace_floats(s)) : direct;
}

// Algorithm choice on the GPU: Fft runs conv2d_fft.cu (forward and backward data only); Direct
// and Auto run the direct kernels above. Auto stays direct until a GPU run has verified the FFT
// path (tests/test_cuda_conv_fft.cpp) and benchmarked it (bench/bench_ops_cuda.cu's FFT rows);
// only then may Auto pick FFT for the shapes where it wins.
static bool use_fft(const Conv2dShape& s) { return s.algo == Conv2dAlgo::Fft; }

// Tf32 runs the tensor-core kernels of conv2d_tf32.cu for the direct algorithm, where the shape
// fits them (k <= 13); otherwise (and for Fft) the fp32 kernels run.
template <bool FLIP>
static bool run_tf32_if_asked(const Conv2dShape& s, const ConvArgs& a, float* workspace, cudaStream_t stream,
                              const char* op) {
  if (s.math != Conv2dMath::Tf32 || !tf32_device_supported() || !conv_tf32_supported(a.n, a.cin, a.cout, a.h, a.w, a.k))
    return false;
  run_conv_tf32<FLIP>(a, workspace, stream, op);
  return true;
}

void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                    bool fuse_relu, float* workspace, cudaStream_t stream) {
  const char* op = "conv2d_forward (cuda)";
  check_conv2d_shape(s, op);
  check_not_null(x, op, "x");
  check_not_null(weight, op, "weight");
  check_not_null(y, op, "y");
  if (use_fft(s)) return conv2d_fft_forward(s, x, weight, bias, y, fuse_relu, workspace, stream);
  const ConvArgs a = forward_args(s, x, weight, bias, y, fuse_relu);
  if (!run_tf32_if_asked<false>(s, a, workspace, stream, op)) run_conv<false>(a, workspace, stream, op);
}

void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx, float* workspace,
                          cudaStream_t stream) {
  const char* op = "conv2d_backward_data (cuda)";
  check_conv2d_shape(s, op);
  check_not_null(dy, op, "dy");
  check_not_null(weight, op, "weight");
  check_not_null(dx, op, "dx");
  if (use_fft(s)) return conv2d_fft_backward_data(s, dy, weight, dx, workspace, stream);
  // The convolution of dy [n,c_out,h,w] with the flipped, channel-transposed weights -> dx [n,c_in,h,w].
  Conv2dShape t = s;
  std::swap(t.c_in, t.c_out);
  const ConvArgs a = forward_args(t, dy, weight, nullptr, dx, false);
  if (!run_tf32_if_asked<true>(s, a, workspace, stream, op)) run_conv<true>(a, workspace, stream, op);
}

void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight, float* dbias,
                             float* workspace, cudaStream_t stream) {
  const char* op = "conv2d_backward_weights (cuda)";
  check_conv2d_shape(s, op);
  check_not_null(x, op, "x");
  check_not_null(dy, op, "dy");
  check_not_null(dweight, op, "dweight");
  const WgradPlan p = plan_wgrad(s);
  const WgradKernel kernel = wgrad_kernel(p, s);
  const int partials = kernel.partials;
  if (wgrad_workspace_floats(p, partials, s) > 0) check_not_null(workspace, op, "workspace");
  float* partial = workspace;
  WgradArgs a{x, dy, partial, s.n, s.c_in, s.c_out, s.h, s.w};
  if (kernel.tf32) {
    run_conv_wgrad_tf32(x, dy, partial, s.n, s.c_in, s.c_out, s.h, s.w, s.k, stream, op);
    launch_conv_wgrad_reduce(partial, dweight, p.dw, partials, stream, op);
  } else if (p.tiled) {
    switch (s.k) {
      case 1: launch_wgrad_tiled<1>(p, a, stream, op); break;
      case 3: launch_wgrad_tiled<3>(p, a, stream, op); break;
      case 5: launch_wgrad_tiled<5>(p, a, stream, op); break;
      case 7: launch_wgrad_tiled<7>(p, a, stream, op); break;
      case 9: launch_wgrad_tiled<9>(p, a, stream, op); break;
      default: fail(op, ": no tiled kernel for k=", s.k);  // plan_wgrad and this switch disagree
    }
    launch_conv_wgrad_reduce(partial, dweight, p.dw, partials, stream, op);
  } else {
    conv_wgrad_direct<<<detail::grid_for(p.dw), detail::kBlock, 0, stream>>>(a, s.k, dweight);
    CUDA_CHECK_LAUNCH(op);
  }
  if (dbias) {
    float* bias_hi = workspace + static_cast<size_t>(partials) * p.dw;
    float* bias_lo = bias_hi + static_cast<size_t>(s.c_out) * p.bias_partials;
    const size_t blocks = static_cast<size_t>(s.c_out) * p.bias_partials;
    ISONET_CHECK(blocks <= INT_MAX, op, ": too many bias partials (", blocks, ")");
    bias_partial_kernel<<<static_cast<unsigned>(blocks), detail::kBlock, 0, stream>>>(
        dy, s.c_out, static_cast<size_t>(s.h) * s.w, p.bias_pchunks, p.bias_partials, bias_hi, bias_lo);
    CUDA_CHECK_LAUNCH(op);
    bias_reduce_kernel<<<detail::grid_for(s.c_out), detail::kBlock, 0, stream>>>(bias_hi, bias_lo, s.c_out,
                                                                                 p.bias_partials, dbias);
    CUDA_CHECK_LAUNCH(op);
  }
}

}  // namespace isonet::gpu
