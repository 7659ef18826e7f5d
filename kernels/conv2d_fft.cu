// conv2d_fft.cu: CUDA implementation of the frequency-domain convolution (conv2d_fft.h, gpu::).
//
// Forward, all on the caller's stream, all scratch carved from the caller's workspace
// (conv2d_fft_math.h's Conv2dFftLayout):
//   1. weight [c_out,c_in,k,k] -> real [c_out*c_in][ph][pw]   wrapped kernels g     (kernel b)
//   2. cuFFT R2C, batch c_out*c_in                           -> G [c_out][c_in][bins]
//   3. x [n,c_in,h,w] -> real [n*c_in][ph][pw]                zero-padded inputs    (kernel a)
//   4. cuFFT R2C, batch n*c_in                               -> X [n][c_in][bins]
//   5. Y[n,o](f) = sum_c G[o,c](f) X[n,c](f)                  -> Y [n][c_out][bins]  (kernel c)
//   6. cuFFT C2R, batch n*c_out                              -> real [n*c_out][ph][pw]
//   7. crop, * 1/(ph*pw), + bias, ReLU                       -> y [n,c_out,h,w]      (kernel d)
// Backward data is the same with dy in place of x, the product conj(G[o,c]) summed over o, and a
// crop without bias or ReLU. The per-element maths of kernels a, b, d and the per-thread work of
// kernel c are the ISONET_HD functions of conv2d_fft_math.h (replayed on the host by
// tests/test_conv2d_fft_gpu_math.cpp); this file adds the launch geometry and cuFFT.
//
// Kernels a, b, d: one warp per padded (or output) row, lanes along the row: coalesced, and the
// row -> (plane, i) split is one 32-bit division per row, not a 64-bit one per element.
// Kernel c: threads along the bins (coalesced 8-byte loads), each accumulating BN x BQ complex
// outputs in registers; when that leaves the GPU short of threads, 2 or 4 lanes of a warp share a
// bin, each summing every split-th reduction channel, and a fixed shuffle tree adds them
// (deterministic). See choose_spectral_blocking.
//
// cuFFT plans: created with auto-allocation off (cufftSetAutoAllocation(0)), so a plan holds
// only its small internal tables; the work area is a region of the caller's workspace, set with
// cufftSetWorkArea on every call together with cufftSetStream. Plans are cached keyed by (host
// thread, device, R2C/C2R, ph, pw, batch): shapes with the same geometry share them within a
// thread. Creating a plan allocates device memory, so it happens in conv2d_fft_workspace_floats
// (which must know the plans' work sizes anyway): the CUDA backend calls it when a network
// reserves its workspace (Network::plan -> Backend::reserve_workspace), before the first step, so
// training steps on that thread only look plans up. A forward/backward call for a shape never
// sized on its thread creates its plans then (once). Plans are never destroyed (a few per layer
// shape, freed with the process). Thread safety: cuFFT is thread-safe only "as long as different
// host threads execute FFTs using different plans" (cuFFT guide, Thread Safety); a plan shared
// between threads, even with its calls serialized by a lock, is outside that contract (a plan
// reused across threads gave exec errors in NVIDIA/MatX#1039). Hence the thread in the key; the
// cache itself is guarded by a mutex. A thread id reused after its thread ended takes over that
// thread's plans, which nobody else can be using.
#include <cufft.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <tuple>

#include "kernels/conv2d_fft.h"
#include "kernels/conv2d_fft_math.h"
#include "kernels/cuda_launch.h"
#include "kernels/op_checks.h"

namespace isonet::gpu {

namespace {

using fftconv::Conv2dFftLayout;
using fftconv::FftComplex;
using fftconv::SpectralBlocking;
using fftconv::SpectralProductArgs;

static_assert(sizeof(FftComplex) == sizeof(cufftComplex) && alignof(FftComplex) == alignof(cufftComplex),
              "FftComplex must match cufftComplex");

// ---------------------------------------------------------------------------------------------
// cuFFT plan cache
// ---------------------------------------------------------------------------------------------

struct CachedPlan {
  cufftHandle handle = 0;
  size_t work_bytes = 0;
};

// host thread, device, cufftType, ph, pw, batch (the thread: see the file comment)
using PlanKey = std::tuple<std::thread::id, int, int, int, int, long long>;

std::mutex& plan_cache_mutex() {
  static std::mutex m;
  return m;
}
// Leaked on purpose: destroying plans during static destruction may run after the CUDA runtime
// has shut down.
std::map<PlanKey, std::unique_ptr<CachedPlan>>& plan_cache() {
  static auto* cache = new std::map<PlanKey, std::unique_ptr<CachedPlan>>();
  return *cache;
}

// The calling thread's cached plan for `batch` 2D transforms ph x pw of `type` (CUFFT_R2C or
// CUFFT_C2R) in the contiguous layouts of conv2d_fft_math.h (real planes ph*pw apart, spectra
// ph*(pw/2+1) apart).
CachedPlan& get_plan(cufftType type, int ph, int pw, long long batch, const char* op) {
  int device = 0;
  CUDA_CHECK(op, cudaGetDevice(&device));
  const PlanKey key{std::this_thread::get_id(), device, static_cast<int>(type), ph, pw, batch};
  std::lock_guard<std::mutex> lock(plan_cache_mutex());
  auto& cache = plan_cache();
  auto it = cache.find(key);
  if (it != cache.end()) return *it->second;
  auto plan = std::make_unique<CachedPlan>();
  CUFFT_CHECK(op, cufftCreate(&plan->handle));
  // From here a failure must not leak the handle.
  try {
    CUFFT_CHECK(op, cufftSetAutoAllocation(plan->handle, 0));
    long long n[2] = {ph, pw};
    const long long real_dist = static_cast<long long>(ph) * pw;
    const long long cplx_dist = static_cast<long long>(ph) * (pw / 2 + 1);
    const bool r2c = type == CUFFT_R2C;
    CUFFT_CHECK(op, cufftMakePlanMany64(plan->handle, 2, n, nullptr, 1, r2c ? real_dist : cplx_dist, nullptr, 1,
                                        r2c ? cplx_dist : real_dist, type, batch, &plan->work_bytes));
  } catch (...) {
    cufftDestroy(plan->handle);
    throw;
  }
  return *cache.emplace(key, std::move(plan)).first->second;
}

// The five plans of a shape (forward and backward data).
struct ShapePlans {
  CachedPlan* weights_r2c;  // batch c_out*c_in
  CachedPlan* in_r2c;       // x: batch n*c_in
  CachedPlan* out_c2r;      // y: batch n*c_out
  CachedPlan* dy_r2c;       // dy: batch n*c_out
  CachedPlan* dx_c2r;       // dx: batch n*c_in
  size_t work_bytes() const {
    return std::max({weights_r2c->work_bytes, in_r2c->work_bytes, out_c2r->work_bytes, dy_r2c->work_bytes,
                     dx_c2r->work_bytes});
  }
};

ShapePlans shape_plans(const Conv2dShape& s, const Conv2dFftSize& sz, const char* op) {
  const long long nc_in = static_cast<long long>(s.n) * s.c_in, nc_out = static_cast<long long>(s.n) * s.c_out;
  ShapePlans p;
  p.weights_r2c = &get_plan(CUFFT_R2C, sz.ph, sz.pw, static_cast<long long>(s.c_out) * s.c_in, op);
  p.in_r2c = &get_plan(CUFFT_R2C, sz.ph, sz.pw, nc_in, op);
  p.out_c2r = &get_plan(CUFFT_C2R, sz.ph, sz.pw, nc_out, op);
  p.dy_r2c = &get_plan(CUFFT_R2C, sz.ph, sz.pw, nc_out, op);
  p.dx_c2r = &get_plan(CUFFT_C2R, sz.ph, sz.pw, nc_in, op);
  return p;
}

// Only the plan's own thread runs it (the key), so setting its stream and work area needs no lock.
void exec_r2c(CachedPlan& p, float* real, FftComplex* spectra, void* work, cudaStream_t stream, const char* op) {
  CUFFT_CHECK(op, cufftSetStream(p.handle, stream));
  CUFFT_CHECK(op, cufftSetWorkArea(p.handle, work));
  CUFFT_CHECK(op, cufftExecR2C(p.handle, real, reinterpret_cast<cufftComplex*>(spectra)));
}

// Note: cuFFT's out-of-place C2R overwrites its input spectra (never needed afterwards here).
void exec_c2r(CachedPlan& p, FftComplex* spectra, float* real, void* work, cudaStream_t stream, const char* op) {
  CUFFT_CHECK(op, cufftSetStream(p.handle, stream));
  CUFFT_CHECK(op, cufftSetWorkArea(p.handle, work));
  CUFFT_CHECK(op, cufftExecC2R(p.handle, reinterpret_cast<cufftComplex*>(spectra), real));
}

// ---------------------------------------------------------------------------------------------
// Kernels a, b, d: one warp per row
// ---------------------------------------------------------------------------------------------

// Calls f(row, lane) for every row in [0, rows), one warp per row (grid-stride over warps).
template <class F>
__device__ __forceinline__ void for_each_row(unsigned rows, F&& f) {
  const unsigned lane = threadIdx.x & 31u;
  const unsigned warps = (gridDim.x * blockDim.x) >> 5;
  for (unsigned row = (blockIdx.x * blockDim.x + threadIdx.x) >> 5; row < rows; row += warps) f(row, lane);
}

// (a) real [planes][ph][pw] <- src [planes][h][w] zero-padded; rows = planes * ph.
__global__ void embed_kernel(const float* __restrict__ src, float* __restrict__ real, unsigned rows, int h, int w,
                             int ph, int pw) {
  for_each_row(rows, [&](unsigned row, unsigned lane) {
    const unsigned plane = row / static_cast<unsigned>(ph);
    const int i = static_cast<int>(row - plane * static_cast<unsigned>(ph));
    float* dst = real + static_cast<size_t>(row) * pw;
    for (int j = static_cast<int>(lane); j < pw; j += 32) dst[j] = fftconv::fft_embed_value(src, plane, i, j, h, w);
  });
}

// (b) real [c_out*c_in][ph][pw] <- wrapped kernels of weight [c_out,c_in,k,k]; rows = planes * ph.
__global__ void weight_kernel(const float* __restrict__ weight, float* __restrict__ real, unsigned rows, int k, int ph,
                              int pw) {
  for_each_row(rows, [&](unsigned row, unsigned lane) {
    const unsigned plane = row / static_cast<unsigned>(ph);
    const int i = static_cast<int>(row - plane * static_cast<unsigned>(ph));
    float* dst = real + static_cast<size_t>(row) * pw;
    for (int j = static_cast<int>(lane); j < pw; j += 32)
      dst[j] = fftconv::fft_weight_value(weight, plane, i, j, k, ph, pw);
  });
}

// (d) out [planes][h][w] <- crop of real [planes][ph][pw], scaled, + bias[plane % channels], ReLU;
// rows = planes * h.
__global__ void crop_kernel(const float* __restrict__ real, float* __restrict__ out, unsigned rows, int h, int w,
                            int ph, int pw, int channels, float scale, const float* __restrict__ bias, bool relu) {
  for_each_row(rows, [&](unsigned row, unsigned lane) {
    const unsigned plane = row / static_cast<unsigned>(h);
    const int i = static_cast<int>(row - plane * static_cast<unsigned>(h));
    const int channel = static_cast<int>(plane % static_cast<unsigned>(channels));
    float* dst = out + static_cast<size_t>(row) * w;
    for (int j = static_cast<int>(lane); j < w; j += 32)
      dst[j] = fftconv::fft_crop_value(real, plane, i, j, ph, pw, scale, bias, channel, relu);
  });
}

// Blocks of 256 threads (8 rows each) for `rows` rows.
unsigned row_grid(size_t rows) { return detail::grid_for(rows * 32, detail::kBlock); }

unsigned checked_rows(size_t rows, const char* op) {
  ISONET_CHECK(rows <= static_cast<size_t>(INT_MAX), op, ": too many rows (", rows, ")");
  return static_cast<unsigned>(rows);
}

// ---------------------------------------------------------------------------------------------
// Kernel c: per-bin channel product
// ---------------------------------------------------------------------------------------------

constexpr int kProductThreads = fftconv::kSpectralWarps * 32;

// Block -> (bin tile, batch block, channel block), the channel block fastest, so the blocks that
// run together read the same bins (L2 reuse). Lane -> (phase, bin): lanes l and l + 32/split
// share a bin. See the file comment.
template <int BN, int BQ, bool CONJ>
__global__ void __launch_bounds__(kProductThreads) spectral_product_kernel(SpectralProductArgs a, int split,
                                                                           int n_blocks, int q_blocks) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int bins_per_warp = 32 / split;
  const int phase = lane / bins_per_warp;
  unsigned b = blockIdx.x;
  const int qb = static_cast<int>(b % static_cast<unsigned>(q_blocks));
  b /= static_cast<unsigned>(q_blocks);
  const int nb = static_cast<int>(b % static_cast<unsigned>(n_blocks));
  const unsigned tile = b / static_cast<unsigned>(n_blocks);
  const size_t f = static_cast<size_t>(tile) * (fftconv::kSpectralWarps * bins_per_warp) +
                   static_cast<size_t>(warp * bins_per_warp + lane % bins_per_warp);
  const bool active = f < a.bins;  // same for every lane of a bin: partners agree

  float re[BN][BQ], im[BN][BQ];
  if (active) {
    fftconv::spectral_partial<BN, BQ, CONJ>(a, f, nb * BN, qb * BQ, phase, split, re, im);
  } else {
#pragma unroll
    for (int i = 0; i < BN; ++i)
#pragma unroll
      for (int j = 0; j < BQ; ++j) re[i][j] = im[i][j] = 0.f;
  }
  // Phase s += phase s + off for off = split/2, ..., 1 (spectral_reduce_order); in lanes:
  // off phases = off * bins_per_warp lanes. Every lane takes part (full mask).
  for (int off = 16; off >= bins_per_warp; off >>= 1) {
#pragma unroll
    for (int i = 0; i < BN; ++i)
#pragma unroll
      for (int j = 0; j < BQ; ++j) {
        re[i][j] += __shfl_down_sync(0xffffffffu, re[i][j], off);
        im[i][j] += __shfl_down_sync(0xffffffffu, im[i][j], off);
      }
  }
  if (active && phase == 0) fftconv::spectral_store<BN, BQ>(a, f, nb * BN, qb * BQ, re, im);
}

void launch_product(const SpectralProductArgs& a, bool conj, cudaStream_t stream, const char* op) {
  const SpectralBlocking blk = fftconv::choose_spectral_blocking(a.n, a.q, a.r, a.bins);
  const int n_blocks = (a.n + blk.bn - 1) / blk.bn, q_blocks = (a.q + blk.bq - 1) / blk.bq;
  const size_t per_block = static_cast<size_t>(fftconv::spectral_bins_per_block(blk.split));
  const size_t tiles = (a.bins + per_block - 1) / per_block;
  const size_t blocks = tiles * n_blocks * q_blocks;
  ISONET_CHECK(blocks <= static_cast<size_t>(INT_MAX), op, ": too many product blocks (", blocks, ")");
  fftconv::with_spectral_blocking(blk.bn, blk.bq, [&](auto BN, auto BQ) {
    constexpr int kBN = decltype(BN)::value, kBQ = decltype(BQ)::value;
    if (conj)
      spectral_product_kernel<kBN, kBQ, true>
          <<<static_cast<unsigned>(blocks), kProductThreads, 0, stream>>>(a, blk.split, n_blocks, q_blocks);
    else
      spectral_product_kernel<kBN, kBQ, false>
          <<<static_cast<unsigned>(blocks), kProductThreads, 0, stream>>>(a, blk.split, n_blocks, q_blocks);
  });
  CUDA_CHECK_LAUNCH(op);
}

// ---------------------------------------------------------------------------------------------
// Shared driver pieces
// ---------------------------------------------------------------------------------------------

// Workspace regions of one call.
struct Regions {
  float* real;
  FftComplex* data;
  FftComplex* weight;
  FftComplex* out;
  void* work;
};

Regions carve(float* workspace, const Conv2dFftLayout& L, const char* op) {
  check_not_null(workspace, op, "workspace");
  // cuFFT and the 8-byte complex accesses need aligned buffers; regions are 256-byte multiples
  // from the start, and cudaMalloc (the backend's workspace) returns 256-byte aligned memory.
  ISONET_CHECK((reinterpret_cast<uintptr_t>(workspace) & 255u) == 0, op,
               ": workspace must be 256-byte aligned (as cudaMalloc returns it)");
  return {workspace + L.real, reinterpret_cast<FftComplex*>(workspace + L.data),
          reinterpret_cast<FftComplex*>(workspace + L.weight), reinterpret_cast<FftComplex*>(workspace + L.out),
          workspace + L.work};
}

// Steps 1-2: G [c_out][c_in][bins] from weight [c_out,c_in,k,k].
void weight_spectra(const Conv2dShape& s, const Conv2dFftSize& sz, const float* weight, const Regions& r,
                    CachedPlan& plan, cudaStream_t stream, const char* op) {
  const unsigned rows = checked_rows(static_cast<size_t>(s.c_out) * s.c_in * sz.ph, op);
  weight_kernel<<<row_grid(rows), detail::kBlock, 0, stream>>>(weight, r.real, rows, s.k, sz.ph, sz.pw);
  CUDA_CHECK_LAUNCH(op);
  exec_r2c(plan, r.real, r.weight, r.work, stream, op);
}

// Steps 3-4: spectra [planes][bins] of src [planes][h][w].
void input_spectra(const Conv2dShape& s, const Conv2dFftSize& sz, const float* src, size_t planes, const Regions& r,
                   CachedPlan& plan, cudaStream_t stream, const char* op) {
  const unsigned rows = checked_rows(planes * sz.ph, op);
  embed_kernel<<<row_grid(rows), detail::kBlock, 0, stream>>>(src, r.real, rows, s.h, s.w, sz.ph, sz.pw);
  CUDA_CHECK_LAUNCH(op);
  exec_r2c(plan, r.real, r.data, r.work, stream, op);
}

// Steps 6-7: dst [planes][h][w] from the spectra in r.out.
void output_planes(const Conv2dShape& s, const Conv2dFftSize& sz, size_t planes, int channels, const float* bias,
                   bool relu, float* dst, const Regions& r, CachedPlan& plan, cudaStream_t stream, const char* op) {
  exec_c2r(plan, r.out, r.real, r.work, stream, op);
  const unsigned rows = checked_rows(planes * s.h, op);
  crop_kernel<<<row_grid(rows), detail::kBlock, 0, stream>>>(r.real, dst, rows, s.h, s.w, sz.ph, sz.pw, channels,
                                                             fftconv::fft_inverse_scale(sz), bias, relu);
  CUDA_CHECK_LAUNCH(op);
}

// Forward (src = x, dst = y) or backward data (src = dy, dst = dx): steps 1-7 of the file comment.
//   forward:       Y[m,o]  = sum_c G[o,c] X[m,c]         weight plane of (q = o, r = c) is o * c_in + c
//   backward data: DX[m,c] = sum_o conj(G[o,c]) DY[m,o]  weight plane of (q = c, r = o) is o * c_in + c
void kernel_product_pass(const Conv2dShape& s, const float* src, const float* weight, bool backward_data,
                         const float* bias, bool relu, float* dst, float* workspace, cudaStream_t stream,
                         const char* op) {
  const Conv2dFftSize sz = conv2d_fft_size(s);
  const ShapePlans plans = shape_plans(s, sz, op);
  const Conv2dFftLayout L = fftconv::conv2d_fft_layout(s, sz, plans.work_bytes());
  const Regions r = carve(workspace, L, op);
  const int src_channels = backward_data ? s.c_out : s.c_in, dst_channels = backward_data ? s.c_in : s.c_out;
  const size_t src_planes = static_cast<size_t>(s.n) * src_channels;
  const size_t dst_planes = static_cast<size_t>(s.n) * dst_channels;

  weight_spectra(s, sz, weight, r, *plans.weights_r2c, stream, op);
  input_spectra(s, sz, src, src_planes, r, backward_data ? *plans.dy_r2c : *plans.in_r2c, stream, op);
  const size_t q_stride = backward_data ? 1 : static_cast<size_t>(s.c_in);
  const size_t r_stride = backward_data ? static_cast<size_t>(s.c_in) : 1;
  const SpectralProductArgs a{r.data, r.weight, r.out, s.n, dst_channels, src_channels, L.bins, q_stride, r_stride};
  launch_product(a, backward_data, stream, op);
  output_planes(s, sz, dst_planes, dst_channels, bias, relu, dst, r, backward_data ? *plans.dx_c2r : *plans.out_c2r,
                stream, op);
}

}  // namespace

size_t conv2d_fft_workspace_floats(const Conv2dShape& s) {
  const char* op = "conv2d_fft_workspace_floats (cuda)";
  check_conv2d_shape(s, op);
  const Conv2dFftSize sz = conv2d_fft_size(s);
  return fftconv::conv2d_fft_layout(s, sz, shape_plans(s, sz, op).work_bytes()).total_floats;
}

void conv2d_fft_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                        bool fuse_relu, float* workspace, cudaStream_t stream) {
  const char* op = "conv2d_fft_forward (cuda)";
  check_conv2d_shape(s, op);
  check_not_null(x, op, "x");
  check_not_null(weight, op, "weight");
  check_not_null(y, op, "y");
  kernel_product_pass(s, x, weight, /*backward_data=*/false, bias, fuse_relu, y, workspace, stream, op);
}

void conv2d_fft_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx,
                              float* workspace, cudaStream_t stream) {
  const char* op = "conv2d_fft_backward_data (cuda)";
  check_conv2d_shape(s, op);
  check_not_null(dy, op, "dy");
  check_not_null(weight, op, "weight");
  check_not_null(dx, op, "dx");
  kernel_product_pass(s, dy, weight, /*backward_data=*/true, nullptr, false, dx, workspace, stream, op);
}

}  // namespace isonet::gpu
