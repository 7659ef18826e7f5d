// conv2d_gpu_math.h: the index maths of the CUDA direct convolutions, written once as ISONET_HD
// functions so that the kernels (conv2d.cu: fp32 FFMA; conv2d_tf32.cu: TF32 tensor cores) and the
// host test tests/test_conv2d_tf32_gpu_math.cpp (which replays the TF32 kernel on the CPU, lane by
// lane, with the mma instruction emulated from its PTX definition) run the same code. Plain C++:
// no CUDA header needed.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "kernels/hostdevice.h"

namespace isonet::gpu {

ISONET_HD constexpr int ceil_div(int a, int b) { return (a + b - 1) / b; }

// One forward convolution as the kernels see it. For the backward data pass the "input" is dy,
// the "output" is dx, and cin/cout are the layer's c_out/c_in.
struct ConvArgs {
  const float* in;      // [n, cin, h, w]
  const float* weight;  // !FLIP: [cout][cin][k][k]; FLIP: the layer's weight [cin][cout][k][k]
  const float* bias;    // [cout] or null
  float* out;           // [n, cout, h, w]
  int n, cin, cout, h, w, k;
  bool relu;
};

// Weight of the convolution seen by the kernel, for output channel oc, input channel ic, tap (u, v).
// FLIP (backward data): dx = conv(dy, W') with W'[c][o][u][v] = W[o][c][k-1-u][k-1-v], read
// straight from W (no copy).
template <bool FLIP>
ISONET_HD float conv_weight(const ConvArgs& a, int k, int oc, int ic, int u, int v) {
  if constexpr (!FLIP) {
    return a.weight[(static_cast<size_t>(oc) * a.cin + ic) * k * k + u * k + v];
  } else {
    return a.weight[(static_cast<size_t>(ic) * a.cout + oc) * k * k + (k - 1 - u) * k + (k - 1 - v)];
  }
}

// + bias, optional ReLU. NaN < 0 is false: NaN propagates, as on the CPU.
ISONET_HD float conv_epilogue(float acc, const ConvArgs& a, int oc) {
  const float v = a.bias ? acc + a.bias[oc] : acc;
  return a.relu ? (v < 0.f ? 0.f : v) : v;
}

namespace tf32conv {

// ---------------------------------------------------------------------------------------------
// TF32 rounding: what the tensor cores multiply
// ---------------------------------------------------------------------------------------------

// x rounded to TF32 (8-bit exponent, 10-bit mantissa): round to nearest, ties away from zero, as
// PTX cvt.rna.tf32.f32; the result is an fp32 value whose low 13 mantissa bits are zero.
// Inf and NaN pass through; a value within half a TF32 ulp of FLT_MAX rounds to Inf, as on the GPU.
ISONET_HD float tf32_round(float x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(x));
  return __uint_as_float(r & 0xffffe000u);
#elif defined(__CUDA_ARCH__)  // before sm_80 (no cvt to tf32): the same rounding by hand
  uint32_t b = __float_as_uint(x);
  if ((b & 0x7f800000u) != 0x7f800000u) b = (b + 0x1000u) & 0xffffe000u;
  return __uint_as_float(b);
#else
  uint32_t b;
  std::memcpy(&b, &x, sizeof b);
  if ((b & 0x7f800000u) != 0x7f800000u) b = (b + 0x1000u) & 0xffffe000u;  // magnitude + half ulp, truncated
  float r;
  std::memcpy(&r, &b, sizeof r);
  return r;
#endif
}

// ---------------------------------------------------------------------------------------------
// Block tiling
// ---------------------------------------------------------------------------------------------
// A block computes a kTileH x kTileW output tile of one image for co_t output channels (8, 16 or 32:
// 1, 2 or 4 mma n-tiles of 8). Warp w owns tile rows 2w and 2w+1; its 4 m-tiles of 16 pixels are
// m = 2*r + half: row 2w + r, columns 16*half .. 16*half + 15. The GEMM's k dimension runs over
// taps (input channel, u, v) of a chunk of kCI input channels: kCI*k*k taps, a multiple of the mma's
// k = 8 for every odd k, so no step mixes chunks.
constexpr int kTileH = 16, kTileW = 32;
constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
constexpr int kMTiles = 4;
constexpr int kCI = 8;
constexpr int kMaxSplits = 8;
// Shared memory per block at most: 99 KB, what sm_86/sm_89 GPUs allow (A100 163 KB, H100 227 KB),
// so every GPU our sm_80 code runs on can launch every plan; it also keeps 2 blocks per H100 SM.
constexpr size_t kMaxSmemBytes = 99 * 1024;
// Blocks that fill an H100 (132 SMs x 2 resident blocks of 8 warps); a heuristic only.
constexpr long long kTargetBlocks = 264;

// Row stride of the staged weights [tap][w_stride]: a multiple of 8 that is 8 or 24 mod 32, so the
// B-fragment loads (lane 4g+t reads row t, column g) hit 32 different banks.
ISONET_HD constexpr int weight_stride(int co_t) { return co_t == 8 ? 8 : co_t + 8; }

// Shared memory of one block, in 4-byte words: the input tile with halo [kCI][in_h][in_w], the
// weights [kCI*k*k][w_stride] (16-byte aligned), the tap offsets [kCI*k*k] (ints).
struct Smem {
  int in_h = 0, in_w = 0, in_plane = 0;
  int taps = 0;       // kCI * k * k
  int w_stride = 0;
  int w_offset = 0;   // first weight word
  int tap_offset = 0; // first tap-offset word
  int words = 0;
  size_t bytes() const { return static_cast<size_t>(words) * 4; }
};

inline Smem smem_layout(int k, int co_t) {
  Smem s;
  s.in_h = kTileH + k - 1;
  s.in_w = kTileW + k - 1;  // m-tile 1 reads up to column 16 + 15 + k - 1
  s.in_plane = s.in_h * s.in_w;
  s.taps = kCI * k * k;
  s.w_stride = weight_stride(co_t);
  s.w_offset = (kCI * s.in_plane + 3) / 4 * 4;
  s.tap_offset = s.w_offset + s.taps * s.w_stride;
  s.words = s.tap_offset + s.taps;
  return s;
}

// How a forward (or backward-data) convolution is cut into blocks: a pure function of the shape,
// so the workspace size and the summation order depend on nothing else.
struct Plan {
  bool ok = false;  // false: even 8 channels per block need more shared memory than kMaxSmemBytes (k >= 15)
  int co_t = 0, co_tiles = 0, tiles_x = 0, tiles_y = 0;
  int chunks = 0, splits = 1, chunks_per_split = 0;
  long long blocks = 0;
  size_t out_floats = 0;  // n * cout * h * w
  Smem smem;
  size_t workspace_floats() const { return splits > 1 ? static_cast<size_t>(splits) * out_floats : 0; }
};

// Output channels per block: the largest of 32, 16, 8 that wastes less than one n-tile of 8
// (cout = 48: 3 x 16, not 2 x 32).
inline int pick_co_t(int cout) {
  for (int co_t : {32, 16, 8})
    if (ceil_div(cout, co_t) * co_t - cout < 8) return co_t;
  return 8;
}

inline Plan plan(int n, int cin, int cout, int h, int w, int k) {
  Plan p;
  p.out_floats = static_cast<size_t>(n) * cout * h * w;
  p.co_t = pick_co_t(cout);
  p.tiles_x = ceil_div(w, kTileW);
  p.tiles_y = ceil_div(h, kTileH);
  const long long spatial = static_cast<long long>(n) * p.tiles_x * p.tiles_y;
  // Few blocks: 16 channels per block (two n-tiles still share each A fragment), then split-K.
  if (p.co_t == 32 && spatial * ceil_div(cout, 32) < kTargetBlocks) p.co_t = 16;
  p.co_tiles = ceil_div(cout, p.co_t);
  p.chunks = ceil_div(cin, kCI);
  const long long base = spatial * p.co_tiles;
  const long long want = (kTargetBlocks + base - 1) / base;
  const int splits = static_cast<int>(std::clamp<long long>(want, 1, std::min(p.chunks, kMaxSplits)));
  p.chunks_per_split = ceil_div(p.chunks, splits);
  p.splits = ceil_div(p.chunks, p.chunks_per_split);  // no empty split
  p.blocks = base * p.splits;
  p.smem = smem_layout(k, p.co_t);
  p.ok = p.smem.bytes() <= kMaxSmemBytes;
  // Large kernels: fewer channels per block until the weights fit (k = 9 takes 16, k = 11, 13 8).
  while (!p.ok && p.co_t > 8) {
    p.co_t /= 2;
    p.co_tiles = ceil_div(cout, p.co_t);
    p.blocks = static_cast<long long>(n) * p.tiles_x * p.tiles_y * p.co_tiles * p.splits;
    p.smem = smem_layout(k, p.co_t);
    p.ok = p.smem.bytes() <= kMaxSmemBytes;
  }
  return p;
}

// Block index -> (image, split, channel tile, tile row, tile col); the spatial tile varies fastest
// so neighbouring blocks share their weights in L2.
struct BlockCoords {
  int tx, ty, ct, split, img;
};
ISONET_HD BlockCoords decode_block(unsigned b, int tiles_x, int tiles_y, int co_tiles, int splits) {
  BlockCoords c;
  c.tx = static_cast<int>(b % tiles_x);
  b /= tiles_x;
  c.ty = static_cast<int>(b % tiles_y);
  b /= tiles_y;
  c.ct = static_cast<int>(b % co_tiles);
  b /= co_tiles;
  c.split = static_cast<int>(b % splits);
  c.img = static_cast<int>(b / splits);
  return c;
}

// ---------------------------------------------------------------------------------------------
// Staging: one shared-memory word each
// ---------------------------------------------------------------------------------------------

// Word idx of the staged input tile [kCI][in_h][in_w] for the chunk of input channels ci0 ..
// ci0 + nci - 1 at tile origin (y0, x0): TF32-rounded input, zero outside the image (the 'same'
// padding) and for channel slots past nci (so the last chunk's padding taps multiply 0 by 0).
ISONET_HD float stage_input_value(const ConvArgs& a, const Smem& s, int img, int ci0, int nci, int y0, int x0,
                                  int idx) {
  const int ci = idx / s.in_plane;
  const int r = idx - ci * s.in_plane;
  const int row = r / s.in_w, col = r - row * s.in_w;
  const int gy = y0 + row - a.k / 2, gx = x0 + col - a.k / 2;
  if (ci >= nci || gy < 0 || gy >= a.h || gx < 0 || gx >= a.w) return 0.f;
  const size_t plane = static_cast<size_t>(a.h) * a.w;
  return tf32_round(a.in[(static_cast<size_t>(img) * a.cin + ci0 + ci) * plane + static_cast<size_t>(gy) * a.w + gx]);
}

// Word idx of the staged weights [taps][w_stride], tap = (ci * k + u) * k + v: TF32-rounded
// weight of output channel co0 + o, zero for o >= co_t (the bank padding), channels past cout
// and channel slots past nci.
template <bool FLIP>
ISONET_HD float stage_weight_value(const ConvArgs& a, const Smem& s, int co0, int co_t, int ci0, int nci, int idx) {
  const int tap = idx / s.w_stride;
  const int o = idx - tap * s.w_stride;
  const int kk = a.k * a.k;
  const int ci = tap / kk, uv = tap - ci * kk;
  const int oc = co0 + o;
  if (o >= co_t || oc >= a.cout || ci >= nci) return 0.f;
  return tf32_round(conv_weight<FLIP>(a, a.k, oc, ci0 + ci, uv / a.k, uv % a.k));
}

// Groups of 8 taps of a chunk that hold a real tap when the chunk has nci channels (the last one
// of a layer may have fewer than the staged kCI or ci_t): the mma steps of the forward kernel, the
// n-tiles of the backward-weights one. Later groups would only multiply the zero channel slots
// (IsoNet-2's first layer has 1 input channel: 7 steps of 8 taps instead of 49).
ISONET_HD int active_tap_groups(int nci, int k) { return ceil_div(nci * k * k, 8); }

// Offset in the staged input tile of tap (ci, u, v) relative to the output pixel's own position:
// the A operand of output pixel (row, col) of the tile for that tap is in_s[row*in_w + col + offset].
ISONET_HD int tap_offset(const Smem& s, int k, int tap) {
  const int kk = k * k;
  const int ci = tap / kk, uv = tap - ci * kk;
  return ci * s.in_plane + (uv / k) * s.in_w + uv % k;
}

// ---------------------------------------------------------------------------------------------
// mma.sync.m16n8k8 .tf32 fragments
// ---------------------------------------------------------------------------------------------
// Which matrix element register r of lane `lane` holds (PTX ISA, "Matrix fragments for
// mma.m16n8k8", .tf32), with g = lane / 4 and t = lane % 4:
//   A (16 x 8, row major): a[r] at row g + 8*(r & 1), column t + 4*(r >> 1)
//   B (8 x 8, column major): b[r] at row t + 4*r, column g
//   C (16 x 8, fp32): c[r] at row g + 8*(r >> 1), column 2*t + (r & 1)
// Here A's rows are 16 consecutive output pixels of one tile row, A's and B's k index is the tap
// within a step of 8, B's and C's columns are 8 output channels.
ISONET_HD int a_row(int lane, int r) { return (lane >> 2) + 8 * (r & 1); }
ISONET_HD int a_col(int lane, int r) { return (lane & 3) + 4 * (r >> 1); }
ISONET_HD int b_row(int lane, int r) { return (lane & 3) + 4 * r; }
ISONET_HD int b_col(int lane) { return lane >> 2; }
ISONET_HD int c_row(int lane, int r) { return (lane >> 2) + 8 * (r >> 1); }
ISONET_HD int c_col(int lane, int r) { return 2 * (lane & 3) + (r & 1); }

// Tile row and first tile column of warp `warp`'s m-tile m (see "Block tiling").
ISONET_HD int mtile_row(int warp, int m) { return 2 * warp + (m >> 1); }
ISONET_HD int mtile_col(int m) { return 16 * (m & 1); }

// The tap offsets lane `lane` needs in step s (taps 8s .. 8s+7 of the chunk): A's column a_col is
// the same for registers 0, 1 (lo) and for 2, 3 (hi). Loaded once per step, used by every m-tile.
struct LaneTaps {
  int lo, hi;
};
ISONET_HD LaneTaps lane_taps(const int* tap_s, int lane, int s) {
  return {tap_s[8 * s + a_col(lane, 0)], tap_s[8 * s + a_col(lane, 2)]};
}

// The A registers of lane `lane` for m-tile m of warp `warp`: element (pixel i, tap j) =
// in_s[pixel position + tap_offset(j)] (no im2col copy).
ISONET_HD void load_a(const float* in_s, const Smem& L, LaneTaps taps, int warp, int m, int lane, float (&a)[4]) {
  const int pixel = mtile_row(warp, m) * L.in_w + mtile_col(m);
  for (int r = 0; r < 4; ++r) a[r] = in_s[pixel + a_row(lane, r) + (r < 2 ? taps.lo : taps.hi)];
}

// The B registers of lane `lane` for n-tile nt (channels 8nt .. 8nt+7 of the block), taps 8s .. 8s+7.
ISONET_HD void load_b(const float* w_s, const Smem& L, int nt, int lane, int s, float (&b)[2]) {
  for (int r = 0; r < 2; ++r) b[r] = w_s[(8 * s + b_row(lane, r)) * L.w_stride + 8 * nt + b_col(lane)];
}

}  // namespace tf32conv

// =============================================================================================
// TF32 backward weights (conv2d_tf32.cu, conv_wgrad_tf32): dW[o][c][u][v] = sum over pixels of
// dy[o][p] * x[c][p + (u - k/2, v - k/2)] as a GEMM per block: M = co_t output channels (1 or 2
// m-tiles of 16), N = the taps (c, u, v) of a chunk of ci_t input channels (k*k n-tiles of 8
// taps for ci_t = 8; 8 n-tiles for k = 1, ci_t = 64), K = the pixels of the block's slice of
// 8x32 pixel tiles, 8 consecutive pixels of a tile row per mma step. The n-tiles are dealt to the
// 8 warps round robin (warp w: w, w+8, ...); every warp walks all pixels of every tile.
//   A (16 x 8) = dy_s[o][pixel]        a[r] = dy_s[(16m + a_row) * kDyStride + pixel + a_col]
//   B (8 x 8)  = x_s[pixel + tap]      b[r] = x_s[tile row * x_w + col + b_row + tap_offset(b_col)]
//   C (16 x 8) = dW[o][tap]
// Each block writes its raw sums to its slice's partial dW; conv2d.cu's conv_wgrad_reduce adds
// the slices in a fixed order (deterministic, no atomics).
// =============================================================================================
namespace tf32wgrad {

using tf32conv::tf32_round;

constexpr int kTileH = 8, kTileW = 32;
constexpr int kWarps = 8;
constexpr int kThreads = 32 * kWarps;
// Row stride of the staged dy [co_t][kDyStride]: 4 mod 32, so the A loads (lane 4g+t reads row g,
// column t) hit 32 different banks.
constexpr int kDyStride = kTileH * kTileW + 4;
constexpr size_t kMaxSmemBytes = tf32conv::kMaxSmemBytes;
constexpr long long kTargetBlocks = 264;
constexpr size_t kMaxPartialFloats = size_t(8) << 20;  // 32 MB of dW partials at most (as the fp32 kernel)
constexpr int kMaxPartials = 4096;

// Input channels per chunk: 8 (k*k n-tiles, at least 9 for k >= 3), 64 for k = 1 (8 n-tiles, one per warp).
ISONET_HD constexpr int ci_chunk(int k) { return k == 1 ? 64 : 8; }
// n-tiles per chunk, and per warp at most.
ISONET_HD constexpr int ntiles(int k) { return ci_chunk(k) * k * k / 8; }
ISONET_HD constexpr int ntiles_per_warp(int k) { return (ntiles(k) + kWarps - 1) / kWarps; }

struct Smem {
  int ci_t = 0, taps = 0;
  int x_h = 0, x_w = 0, x_plane = 0;
  int x_offset = 0;    // first word of x_s [ci_t][x_h][x_w]; dy_s [co_t][kDyStride] starts at 0
  int tap_offset = 0;  // first word of the tap offsets [taps] (ints)
  int words = 0;
  size_t bytes() const { return static_cast<size_t>(words) * 4; }
};

inline Smem smem_layout(int k, int co_t) {
  Smem s;
  s.ci_t = ci_chunk(k);
  s.taps = s.ci_t * k * k;
  s.x_h = kTileH + k - 1;
  s.x_w = kTileW + k - 1;
  s.x_plane = s.x_h * s.x_w;
  s.x_offset = co_t * kDyStride;
  s.tap_offset = s.x_offset + s.ci_t * s.x_plane;
  s.words = s.tap_offset + s.taps;
  return s;
}

struct Plan {
  bool ok = false;  // false: no kernel for this k (k > 9, or even) or shared memory too small
  int co_t = 0, co_tiles = 0, ci_tiles = 0;
  int tiles_x = 0, tiles_y = 0;
  long long tiles = 0, tiles_per_slice = 0;
  int slices = 0;
  size_t dw = 0;  // cout * cin * k * k
  Smem smem;
  size_t workspace_floats() const { return static_cast<size_t>(slices) * dw; }
};

inline Plan plan(int n, int cin, int cout, int h, int w, int k) {
  Plan p;
  p.dw = static_cast<size_t>(cout) * cin * k * k;
  if (k != 1 && k != 3 && k != 5 && k != 7 && k != 9) return p;
  // 32 output channels per block (two m-tiles share each B fragment) unless that wastes a whole
  // m-tile; k = 9 keeps 16 (11 n-tiles per warp: 2 m-tiles would not fit in registers).
  p.co_t = (k < 9 && ceil_div(cout, 32) * 32 - cout < 16) ? 32 : 16;
  p.co_tiles = ceil_div(cout, p.co_t);
  p.ci_tiles = ceil_div(cin, ci_chunk(k));
  p.tiles_x = ceil_div(w, kTileW);
  p.tiles_y = ceil_div(h, kTileH);
  p.tiles = static_cast<long long>(n) * p.tiles_x * p.tiles_y;
  const long long base = static_cast<long long>(p.co_tiles) * p.ci_tiles;
  const long long max_partials =
      std::max<long long>(1, std::min<long long>(kMaxPartials, static_cast<long long>(kMaxPartialFloats / p.dw)));
  const long long slices = std::clamp<long long>((kTargetBlocks + base - 1) / base, 1, std::min(p.tiles, max_partials));
  p.tiles_per_slice = (p.tiles + slices - 1) / slices;
  p.slices = static_cast<int>((p.tiles + p.tiles_per_slice - 1) / p.tiles_per_slice);  // no empty slice
  p.smem = smem_layout(k, p.co_t);
  p.ok = p.smem.bytes() <= kMaxSmemBytes;
  return p;
}

// Block index -> (channel tile, input-channel chunk, slice).
struct BlockCoords {
  int ct, it, slice;
};
ISONET_HD BlockCoords decode_block(unsigned b, int co_tiles, int ci_tiles) {
  BlockCoords c;
  c.ct = static_cast<int>(b % co_tiles);
  b /= co_tiles;
  c.it = static_cast<int>(b % ci_tiles);
  c.slice = static_cast<int>(b / ci_tiles);
  return c;
}

// Pixel tile t (of n * tiles_y * tiles_x, x fastest) -> image and origin.
struct TileCoords {
  int img, y0, x0;
};
ISONET_HD TileCoords decode_tile(long long t, int tiles_x, int tiles_y) {
  TileCoords c;
  c.x0 = static_cast<int>(t % tiles_x) * kTileW;
  c.y0 = static_cast<int>((t / tiles_x) % tiles_y) * kTileH;
  c.img = static_cast<int>(t / (static_cast<long long>(tiles_x) * tiles_y));
  return c;
}

// Word idx of the staged dy [co_t][kDyStride] of tile tc: TF32-rounded dy of output channel
// co0 + o at tile pixel (row, col), zero outside the image (those pixels are not outputs), past
// cout and in the bank padding.
ISONET_HD float stage_dy_value(const float* dy, int cout, int h, int w, int co0, TileCoords tc, int idx) {
  const int o = idx / kDyStride, p = idx - o * kDyStride;
  const int row = p / kTileW, col = p - row * kTileW;
  const int gy = tc.y0 + row, gx = tc.x0 + col, oc = co0 + o;
  if (p >= kTileH * kTileW || oc >= cout || gy >= h || gx >= w) return 0.f;
  return tf32_round(dy[(static_cast<size_t>(tc.img) * cout + oc) * h * w + static_cast<size_t>(gy) * w + gx]);
}

// Word idx of the staged x [ci_t][x_h][x_w] (tile with halo): TF32-rounded x of input channel
// ci0 + c, zero outside the image ('same' padding) and for channel slots past nci.
ISONET_HD float stage_x_value(const float* x, int cin, int h, int w, int k, const Smem& L, int ci0, int nci,
                              TileCoords tc, int idx) {
  const int c = idx / L.x_plane, r = idx - c * L.x_plane;
  const int row = r / L.x_w, col = r - row * L.x_w;
  const int gy = tc.y0 + row - k / 2, gx = tc.x0 + col - k / 2;
  if (c >= nci || gy < 0 || gy >= h || gx < 0 || gx >= w) return 0.f;
  return tf32_round(x[(static_cast<size_t>(tc.img) * cin + ci0 + c) * h * w + static_cast<size_t>(gy) * w + gx]);
}

// Offset in x_s of tap (c, u, v) relative to a pixel's own position (tile row * x_w + col).
ISONET_HD int tap_offset(const Smem& L, int k, int tap) {
  const int kk = k * k;
  const int c = tap / kk, uv = tap - c * kk;
  return c * L.x_plane + (uv / k) * L.x_w + uv % k;
}

// A registers of lane `lane`, m-tile m (output channels 16m..16m+15), pixels (row, col0..col0+7).
ISONET_HD void load_a(const float* dy_s, int m, int lane, int row, int col0, float (&a)[4]) {
  for (int r = 0; r < 4; ++r)
    a[r] = dy_s[(16 * m + tf32conv::a_row(lane, r)) * kDyStride + row * kTileW + col0 + tf32conv::a_col(lane, r)];
}

// This lane's tap offset for n-tile nt: B's column b_col(lane) is tap 8*nt + b_col.
ISONET_HD int lane_tap(const int* tap_s, int lane, int nt) { return tap_s[8 * nt + tf32conv::b_col(lane)]; }

// B registers of lane `lane` for the n-tile whose lane tap offset is `tap`, pixels (row, col0..col0+7).
ISONET_HD void load_b(const float* x_s, const Smem& L, int lane, int tap, int row, int col0, float (&b)[2]) {
  for (int r = 0; r < 2; ++r) b[r] = x_s[row * L.x_w + col0 + tf32conv::b_row(lane, r) + tap];
}

// Where accumulator r of lane `lane` for (m-tile m, n-tile nt) goes in the partial dW
// [cout][cin][k][k], or SIZE_MAX when it is padding (channel past cout or past the chunk).
ISONET_HD size_t dw_index(int cin, int cout, int k, int co0, int ci0, int nci, int m, int nt, int lane, int r) {
  const int oc = co0 + 16 * m + tf32conv::c_row(lane, r);
  const int tap = 8 * nt + tf32conv::c_col(lane, r);
  const int kk = k * k, c = tap / kk;
  if (oc >= cout || c >= nci) return static_cast<size_t>(-1);
  return (static_cast<size_t>(oc) * cin + ci0 + c) * kk + (tap - c * kk);
}

}  // namespace tf32wgrad
}  // namespace isonet::gpu
