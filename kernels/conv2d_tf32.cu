// conv2d_tf32.cu: the 'same' stride-1 2D convolution on TF32 tensor cores (Conv2dMath::Tf32): the
// forward pass and the backward data pass (FLIP, as in conv2d.cu) in conv_tf32, backward weights
// in conv_wgrad_tf32 (an implicit GEMM over pixels per block, its layout described in
// conv2d_gpu_math.h, "TF32 backward weights"). Forward / backward data, an implicit GEMM per block:
// M = the block's 16x32 output pixels, N = its co_t output channels, K = the taps (c, u, v) of the
// input channels, consumed in chunks of 8 channels.
//   * Staging (per chunk): the input tile with its halo [8][16+k-1][32+k-1] and the weights
//     [8*k*k taps][co_t (+8 bank padding)] go to shared memory, rounded to TF32 on the way
//     (cvt.rna), zeros outside the image ('same' padding) and past the last channel. A table of
//     tap offsets (tap -> c*plane + u*in_w + v) is built once per block.
//   * The A operand needs no im2col copy: for 16 pixels of one tile row and 8 taps, element
//     (pixel i, tap j) is in_s[row*in_w + col0 + i + tap_offset[j]], so each lane loads its four A
//     registers straight from the staged tile (the PTX fragment layout: conv2d_gpu_math.h).
//   * Each warp owns 2 tile rows x 32 columns = 4 m-tiles of 16 pixels and all co_t channels
//     (NT = co_t/8 n-tiles): per step of 8 taps it loads 16 A words, 2*NT B words and 2 tap
//     offsets, and issues 4*NT mma.sync.m16n8k8 (fp32 accumulators: 16*NT per lane). The asm is
//     not volatile: it has outputs, and volatile would stop the compiler from sharing loads across it.
//   * Epilogue: + bias, optional ReLU, guarded stores; or, when the grid is small, split-K over the
//     channel chunks with raw partials reduced in a fixed order (conv2d.cu's reduction).
// Deterministic: fixed tiling and summation order, no atomics. Requires sm_80 or newer (the build's
// architectures are 80 and 90).
// The index maths (staging, tap offsets, fragment coordinates, tiling plan) is in
// conv2d_gpu_math.h, shared with tests/test_conv2d_tf32_gpu_math.cpp, which replays this kernel on
// the host lane by lane with the mma emulated from its PTX definition.
#include <climits>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "kernels/conv2d_gpu.h"
#include "kernels/cuda_launch.h"
#include "kernels/device.h"
#include "kernels/error.h"
#include "kernels/log.h"
#include "kernels/op_checks.h"

namespace isonet::gpu {

namespace {

using namespace tf32conv;

// Launch geometry passed to the kernel.
struct Grid {
  int co_t, tiles_x, tiles_y, co_tiles, splits, chunks, chunks_per_split;
  Smem smem;
  float* partial;     // splits > 1: [splits][n][cout][h][w] raw sums; else unused
  size_t out_floats;  // n * cout * h * w
};

// d += a * b for one m16n8k8 tile; a: 4 TF32 words, b: 2, d: 4 fp32 accumulators. TF32 mma needs
// sm_80; code built for an older architecture (a -DCMAKE_CUDA_ARCHITECTURES=75 build) compiles
// but never runs this (tf32_device_supported() keeps such GPUs on the fp32 kernels).
__device__ __forceinline__ void mma_tf32(float (&d)[4], const float (&a)[4], const float (&b)[2]) {
#if __CUDA_ARCH__ < 800
  __trap();
#else
  asm(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(__float_as_uint(a[0])), "r"(__float_as_uint(a[1])), "r"(__float_as_uint(a[2])),
        "r"(__float_as_uint(a[3])), "r"(__float_as_uint(b[0])), "r"(__float_as_uint(b[1])));
#endif
}

// One warp, one m16n8k8 tile through the fragment maps of conv2d_gpu_math.h: c = tf32(a) * tf32(b).
__global__ void mma_probe_kernel(const float* a, const float* b, float* c) {
  const int lane = threadIdx.x;
  float af[4], bf[2], cf[4] = {};
#pragma unroll
  for (int r = 0; r < 4; ++r) af[r] = tf32_round(a[a_row(lane, r) * 8 + a_col(lane, r)]);
#pragma unroll
  for (int r = 0; r < 2; ++r) bf[r] = tf32_round(b[b_row(lane, r) * 8 + b_col(lane)]);
  mma_tf32(cf, af, bf);
#pragma unroll
  for (int r = 0; r < 4; ++r) c[c_row(lane, r) * 8 + c_col(lane, r)] = cf[r];
}

template <int NT, bool FLIP>
__global__ void __launch_bounds__(kThreads, 2) conv_tf32(ConvArgs a, Grid g) {
  extern __shared__ float4 smem_f4[];
  const Smem& L = g.smem;
  float* in_s = reinterpret_cast<float*>(smem_f4);                    // [kCI][in_h][in_w]
  float* w_s = in_s + L.w_offset;                                     // [taps][w_stride]
  int* tap_s = reinterpret_cast<int*>(in_s + L.tap_offset);           // [taps]

  const BlockCoords bc = decode_block(blockIdx.x, g.tiles_x, g.tiles_y, g.co_tiles, g.splits);
  const int x0 = bc.tx * kTileW, y0 = bc.ty * kTileH, co0 = bc.ct * g.co_t;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  for (int i = threadIdx.x; i < L.taps; i += kThreads) tap_s[i] = tap_offset(L, a.k, i);

  float acc[kMTiles][NT][4] = {};  // [m-tile][n-tile][C register]

  const int kc_end = min((bc.split + 1) * g.chunks_per_split, g.chunks);
  for (int kc = bc.split * g.chunks_per_split; kc < kc_end; ++kc) {
    const int ci0 = kc * kCI;
    const int nci = min(kCI, a.cin - ci0);
    detail::stage_shared(in_s, kCI * L.in_plane,
                         [&](int idx) { return stage_input_value(a, L, bc.img, ci0, nci, y0, x0, idx); });
    detail::stage_shared(w_s, L.taps * L.w_stride,
                         [&](int idx) { return stage_weight_value<FLIP>(a, L, co0, g.co_t, ci0, nci, idx); });
    __syncthreads();

    const int steps = active_tap_groups(nci, a.k);  // <= L.taps / 8
#pragma unroll 1
    for (int s = 0; s < steps; ++s) {
      const LaneTaps taps = lane_taps(tap_s, lane, s);
      float b[NT][2];
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) load_b(w_s, L, nt, lane, s, b[nt]);
#pragma unroll
      for (int m = 0; m < kMTiles; ++m) {
        float av[4];
        load_a(in_s, L, taps, warp, m, lane, av);
#pragma unroll
        for (int nt = 0; nt < NT; ++nt) mma_tf32(acc[m][nt], av, b[nt]);
      }
    }
    __syncthreads();  // the next chunk overwrites the staged data
  }

  const size_t plane = static_cast<size_t>(a.h) * a.w;
  float* dst = g.splits > 1 ? g.partial + static_cast<size_t>(bc.split) * g.out_floats : a.out;
#pragma unroll
  for (int m = 0; m < kMTiles; ++m) {
    const int oy = y0 + mtile_row(warp, m);
    if (oy >= a.h) continue;
#pragma unroll
    for (int nt = 0; nt < NT; ++nt)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const int ox = x0 + mtile_col(m) + c_row(lane, r);
        const int oc = co0 + 8 * nt + c_col(lane, r);
        if (ox >= a.w || oc >= a.cout) continue;
        const size_t e = (static_cast<size_t>(bc.img) * a.cout + oc) * plane + static_cast<size_t>(oy) * a.w + ox;
        dst[e] = g.splits > 1 ? acc[m][nt][r] : conv_epilogue(acc[m][nt][r], a, oc);
      }
  }
}

// ---------------------------------------------------------------------------------------------
// Backward weights (conv2d_gpu_math.h, "TF32 backward weights")
// ---------------------------------------------------------------------------------------------

struct WgradGrid {
  int co_t, co_tiles, ci_tiles, tiles_x, tiles_y;
  long long tiles, tiles_per_slice;
  tf32wgrad::Smem smem;
};

// x [n,cin,h,w], dy [n,cout,h,w] -> partial [slices][cout][cin][K][K] (this block's slice, channel
// tile and input-channel chunk). MT = co_t / 16 m-tiles.
template <int K, int MT>
__global__ void __launch_bounds__(tf32wgrad::kThreads, 2)
    conv_wgrad_tf32(const float* x, const float* dy, float* partial, int n, int cin, int cout, int h, int w,
                    WgradGrid g) {
  namespace W = tf32wgrad;
  constexpr int NTW = W::ntiles_per_warp(K);
  extern __shared__ float4 smem_f4[];
  const W::Smem& L = g.smem;
  float* dy_s = reinterpret_cast<float*>(smem_f4);               // [co_t][kDyStride]
  float* x_s = dy_s + L.x_offset;                                // [ci_t][x_h][x_w]
  int* tap_s = reinterpret_cast<int*>(dy_s + L.tap_offset);      // [taps]

  const W::BlockCoords bc = W::decode_block(blockIdx.x, g.co_tiles, g.ci_tiles);
  const int co0 = bc.ct * g.co_t, ci0 = bc.it * L.ci_t;
  const int nci = min(L.ci_t, cin - ci0);
  const int ntiles = tf32conv::active_tap_groups(nci, K);  // <= W::ntiles(K): n-tiles with a real tap
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;

  for (int i = threadIdx.x; i < L.taps; i += W::kThreads) tap_s[i] = W::tap_offset(L, K, i);
  __syncthreads();
  int tap[NTW];  // this lane's tap offset in each of the warp's n-tiles (warp + 8i)
#pragma unroll
  for (int i = 0; i < NTW; ++i) tap[i] = warp + 8 * i < ntiles ? W::lane_tap(tap_s, lane, warp + 8 * i) : 0;

  float acc[MT][NTW][4] = {};  // [m-tile][the warp's n-tile][C register]

  const long long t_begin = bc.slice * g.tiles_per_slice;
  const long long t_end = min(t_begin + g.tiles_per_slice, g.tiles);
  for (long long t = t_begin; t < t_end; ++t) {
    const W::TileCoords tc = W::decode_tile(t, g.tiles_x, g.tiles_y);
    detail::stage_shared(dy_s, g.co_t * W::kDyStride,
                         [&](int idx) { return W::stage_dy_value(dy, cout, h, w, co0, tc, idx); });
    detail::stage_shared(x_s, L.ci_t * L.x_plane,
                         [&](int idx) { return W::stage_x_value(x, cin, h, w, K, L, ci0, nci, tc, idx); });
    __syncthreads();
#pragma unroll 1
    for (int row = 0; row < W::kTileH; ++row)
#pragma unroll
      for (int col0 = 0; col0 < W::kTileW; col0 += 8) {
        float a[MT][4];
#pragma unroll
        for (int m = 0; m < MT; ++m) W::load_a(dy_s, m, lane, row, col0, a[m]);
#pragma unroll
        for (int i = 0; i < NTW; ++i) {
          if (warp + 8 * i >= ntiles) break;  // warp-uniform
          float b[2];
          W::load_b(x_s, L, lane, tap[i], row, col0, b);
#pragma unroll
          for (int m = 0; m < MT; ++m) mma_tf32(acc[m][i], a[m], b);
        }
      }
    __syncthreads();  // the next tile overwrites the staged data
  }

  float* out = partial + static_cast<size_t>(bc.slice) * cout * cin * K * K;
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int i = 0; i < NTW; ++i) {
      if (warp + 8 * i >= ntiles) break;
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        const size_t e = W::dw_index(cin, cout, K, co0, ci0, nci, m, warp + 8 * i, lane, r);
        if (e != static_cast<size_t>(-1)) out[e] = acc[m][i][r];
      }
    }
}

// Opts a kernel into kMaxSmemBytes of dynamic shared memory (more than the default 48 KB).
template <class Kernel>
void allow_smem(Kernel kernel, const char* op) {
  CUDA_CHECK(op, cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(tf32conv::kMaxSmemBytes)));
}

// Every TF32 kernel's opt-in, once per device. Done when a Tf32 shape is sized (conv2d.cu), i.e.
// before any launch and outside any CUDA graph capture (a capture records launches, not this).
void opt_in_all(const char* op) {
  static std::mutex mutex;
  static std::set<int> done;
  int device = 0;
  CUDA_CHECK(op, cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  if (done.count(device)) return;
  allow_smem(conv_tf32<1, false>, op);
  allow_smem(conv_tf32<2, false>, op);
  allow_smem(conv_tf32<4, false>, op);
  allow_smem(conv_tf32<1, true>, op);
  allow_smem(conv_tf32<2, true>, op);
  allow_smem(conv_tf32<4, true>, op);
  allow_smem(conv_wgrad_tf32<1, 1>, op);
  allow_smem(conv_wgrad_tf32<1, 2>, op);
  allow_smem(conv_wgrad_tf32<3, 1>, op);
  allow_smem(conv_wgrad_tf32<3, 2>, op);
  allow_smem(conv_wgrad_tf32<5, 1>, op);
  allow_smem(conv_wgrad_tf32<5, 2>, op);
  allow_smem(conv_wgrad_tf32<7, 1>, op);
  allow_smem(conv_wgrad_tf32<7, 2>, op);
  allow_smem(conv_wgrad_tf32<9, 1>, op);
  done.insert(device);  // only once all succeeded (a failure is retried, and reported, next time)
}

template <int K, int MT>
void launch_wgrad(const float* x, const float* dy, float* partial, int n, int cin, int cout, int h, int w,
                  const WgradGrid& g, unsigned blocks, cudaStream_t stream, const char* op) {
  conv_wgrad_tf32<K, MT><<<blocks, tf32wgrad::kThreads, g.smem.bytes(), stream>>>(x, dy, partial, n, cin, cout, h,
                                                                                  w, g);
  CUDA_CHECK_LAUNCH(op);
}

template <int K>
void launch_wgrad_k(int mt, const float* x, const float* dy, float* partial, int n, int cin, int cout, int h, int w,
                    const WgradGrid& g, unsigned blocks, cudaStream_t stream, const char* op) {
  if constexpr (K == 9) {  // 16 channels per block only (plan)
    ISONET_CHECK(mt == 1, op, ": no TF32 backward-weights kernel for k=9 with ", 16 * mt, " channels per block");
    launch_wgrad<K, 1>(x, dy, partial, n, cin, cout, h, w, g, blocks, stream, op);
  } else if (mt == 1) {
    launch_wgrad<K, 1>(x, dy, partial, n, cin, cout, h, w, g, blocks, stream, op);
  } else {
    launch_wgrad<K, 2>(x, dy, partial, n, cin, cout, h, w, g, blocks, stream, op);
  }
}

template <int NT, bool FLIP>
void launch(const ConvArgs& a, const Grid& g, unsigned blocks, cudaStream_t stream, const char* op) {
  conv_tf32<NT, FLIP><<<blocks, kThreads, g.smem.bytes(), stream>>>(a, g);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace

void conv_tf32_prepare_device(const char* op) { opt_in_all(op); }

bool tf32_device_supported() {
  if (!cuda_available()) return true;  // planning without a GPU: the plan of a device that has them
  const char* op = "tf32_device_supported (cuda)";
  static std::mutex mutex;
  static std::map<int, bool> supported;  // device -> compute capability >= 8.0
  int device = 0;
  CUDA_CHECK(op, cudaGetDevice(&device));
  std::lock_guard<std::mutex> lock(mutex);
  const auto it = supported.find(device);
  if (it != supported.end()) return it->second;
  int major = 0, minor = 0;
  CUDA_CHECK(op, cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  CUDA_CHECK(op, cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  const bool ok = major >= 8;
  if (!ok)
    log_info("TF32 convolutions need a GPU of compute capability 8.0 or newer (device " + std::to_string(device) +
             " is " + std::to_string(major) + "." + std::to_string(minor) + "): they run in fp32 there");
  supported.emplace(device, ok);
  return ok;
}

void tf32_mma_probe(const float* a, const float* b, float* c, cudaStream_t stream) {
  const char* op = "tf32_mma_probe (cuda)";
  check_not_null(a, op, "a");
  check_not_null(b, op, "b");
  check_not_null(c, op, "c");
  mma_probe_kernel<<<1, 32, 0, stream>>>(a, b, c);
  CUDA_CHECK_LAUNCH(op);
}

bool conv_tf32_supported(int n, int cin, int cout, int h, int w, int k) { return plan(n, cin, cout, h, w, k).ok; }

size_t conv_tf32_workspace_floats(int n, int cin, int cout, int h, int w, int k) {
  const Plan p = plan(n, cin, cout, h, w, k);
  return p.ok ? p.workspace_floats() : 0;
}

template <bool FLIP>
void run_conv_tf32(const ConvArgs& a, float* workspace, cudaStream_t stream, const char* op) {
  const Plan p = plan(a.n, a.cin, a.cout, a.h, a.w, a.k);
  ISONET_CHECK(p.ok, op, ": no TF32 kernel for k=", a.k, " (its weights do not fit in shared memory)");
  opt_in_all(op);  // a no-op after the first sizing of a Tf32 shape
  ISONET_CHECK(p.blocks <= INT_MAX, op, ": too many tiles (", p.blocks, ")");
  if (p.splits > 1) check_not_null(workspace, op, "workspace");
  const Grid g{p.co_t, p.tiles_x, p.tiles_y, p.co_tiles, p.splits, p.chunks, p.chunks_per_split,
               p.smem, workspace, p.out_floats};
  const unsigned blocks = static_cast<unsigned>(p.blocks);
  switch (p.co_t) {
    case 8: launch<1, FLIP>(a, g, blocks, stream, op); break;
    case 16: launch<2, FLIP>(a, g, blocks, stream, op); break;
    case 32: launch<4, FLIP>(a, g, blocks, stream, op); break;
    default: fail(op, ": no TF32 kernel for ", p.co_t, " channels per block");  // plan and switch disagree
  }
  if (p.splits > 1) launch_conv_split_reduce(a, workspace, p.splits, p.out_floats, stream, op);
}

int conv_wgrad_tf32_partials(int n, int cin, int cout, int h, int w, int k) {
  const tf32wgrad::Plan p = tf32wgrad::plan(n, cin, cout, h, w, k);
  return p.ok ? p.slices : 0;
}

int run_conv_wgrad_tf32(const float* x, const float* dy, float* partial, int n, int cin, int cout, int h, int w,
                        int k, cudaStream_t stream, const char* op) {
  const tf32wgrad::Plan p = tf32wgrad::plan(n, cin, cout, h, w, k);
  ISONET_CHECK(p.ok, op, ": no TF32 backward-weights kernel for k=", k);
  opt_in_all(op);
  check_not_null(partial, op, "workspace");
  const long long blocks = static_cast<long long>(p.slices) * p.ci_tiles * p.co_tiles;
  ISONET_CHECK(blocks <= INT_MAX, op, ": too many blocks (", blocks, ")");
  const WgradGrid g{p.co_t, p.co_tiles, p.ci_tiles, p.tiles_x, p.tiles_y, p.tiles, p.tiles_per_slice, p.smem};
  const int mt = p.co_t / 16;
  const unsigned nb = static_cast<unsigned>(blocks);
  switch (k) {
    case 1: launch_wgrad_k<1>(mt, x, dy, partial, n, cin, cout, h, w, g, nb, stream, op); break;
    case 3: launch_wgrad_k<3>(mt, x, dy, partial, n, cin, cout, h, w, g, nb, stream, op); break;
    case 5: launch_wgrad_k<5>(mt, x, dy, partial, n, cin, cout, h, w, g, nb, stream, op); break;
    case 7: launch_wgrad_k<7>(mt, x, dy, partial, n, cin, cout, h, w, g, nb, stream, op); break;
    case 9: launch_wgrad_k<9>(mt, x, dy, partial, n, cin, cout, h, w, g, nb, stream, op); break;
    default: fail(op, ": no TF32 backward-weights kernel for k=", k);  // plan and switch disagree
  }
  return p.slices;
}

template void run_conv_tf32<false>(const ConvArgs&, float*, cudaStream_t, const char*);
template void run_conv_tf32<true>(const ConvArgs&, float*, cudaStream_t, const char*);

}  // namespace isonet::gpu
