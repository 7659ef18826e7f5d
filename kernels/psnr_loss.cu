// psnr_loss.cu: CUDA kernels for the PSNR loss (psnr_loss.h) and its gradient, with no host
// synchronization: everything, the loss scalar included, stays on the device.
//
// Deterministic two-level reduction through the caller's workspace:
//   1. psnr_partial_kernel: one block per (patch, chunk) sums (y-t)^2 in double and takes the
//      NaN-propagating max of t over a fixed chunk of the patch (fixed shuffle tree per block).
//      The double sum is stored as a float pair hi + lo (hi = float(s), lo = float(s - hi)), which
//      keeps ~48 bits, so the per-patch MSE matches the CPU twin's double sum to ~1e-14.
//   2. psnr_finalize_kernel (one block): per patch, sums the chunk pairs in order, then PSNR, the
//      loss (block reduction in a fixed order) and/or the gradient coefficient, with the CPU
//      twin's formulas in double.
//   3. backward only: dpred = coef[patch] * (pred - target), elementwise.
// Workspace: [hi n*chunks][lo n*chunks][max n*chunks][coef n] floats.
#include "kernels/psnr_loss.h"

#include <climits>

#include "kernels/cuda_launch.h"
#include "kernels/op_checks.h"

namespace isonet::gpu {

namespace {
constexpr size_t kChunk = 2048;    // elements per partial-sum block (before the cap below)
constexpr size_t kMaxChunks = 1024;  // chunks per patch at most
constexpr double kTenOverLn10 = 4.3429448190325182765;  // d(10 log10 u)/du = 10 / (u ln 10)

struct PsnrPlan {
  int chunks;        // partial blocks per patch
  size_t len;        // elements per chunk (the last may be shorter)
  size_t partials;   // n * chunks
};

PsnrPlan plan(const PsnrLossShape& s) {
  PsnrPlan p;
  p.chunks = static_cast<int>(std::clamp<size_t>((s.per_patch + kChunk - 1) / kChunk, 1, kMaxChunks));
  p.len = (s.per_patch + p.chunks - 1) / p.chunks;
  p.partials = static_cast<size_t>(s.n) * p.chunks;
  return p;
}

// pred, target [n, per_patch] -> per (patch, chunk) block b: hi[b] + lo[b] = sum (y-t)^2, mx[b] = max t.
__global__ void psnr_partial_kernel(const float* pred, const float* target, size_t per_patch, int chunks,
                                    size_t len, float* hi, float* lo, float* mx) {
  __shared__ double sum_scratch[32];
  __shared__ float max_scratch[32];
  const size_t b = blockIdx.x;
  const size_t patch = b / chunks, chunk = b - patch * chunks;
  const size_t begin = chunk * len, end = std::min(begin + len, per_patch);
  const float* y = pred + patch * per_patch;
  const float* t = target + patch * per_patch;
  double sq = 0.0;
  float tmax = -INFINITY;
  for (size_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const double d = static_cast<double>(y[i]) - static_cast<double>(t[i]);
    sq += d * d;
    tmax = detail::NanMaxOp{}(tmax, t[i]);
  }
  sq = detail::block_reduce(sq, detail::SumOp{}, 0.0, sum_scratch);
  tmax = detail::block_reduce(tmax, detail::NanMaxOp{}, -INFINITY, max_scratch);
  if (threadIdx.x == 0) {
    const float h = static_cast<float>(sq);
    hi[b] = h;
    lo[b] = static_cast<float>(sq - static_cast<double>(h));
    mx[b] = tmax;
  }
}

// Partials -> loss (1 float, may be null), psnr [n] (may be null), coef [n] (may be null).
__global__ void psnr_finalize_kernel(const float* hi, const float* lo, const float* mx, int n, int chunks,
                                     size_t per_patch, float* loss, float* psnr, float* coef) {
  __shared__ double scratch[32];
  double total = 0.0;
  for (int p = threadIdx.x; p < n; p += blockDim.x) {
    double sq = 0.0;
    float tmax = -INFINITY;
    for (int c = 0; c < chunks; ++c) {
      const size_t b = static_cast<size_t>(p) * chunks + c;
      sq += static_cast<double>(hi[b]) + static_cast<double>(lo[b]);
      tmax = detail::NanMaxOp{}(tmax, mx[b]);
    }
    const double mse = sq / static_cast<double>(per_patch);
    if (loss) {
      const double m = isnan(tmax) ? static_cast<double>(tmax) : fmax(static_cast<double>(tmax), double(kPsnrMaxFloor));
      const double value = 20.0 * log10(m) - 10.0 * log10(mse + static_cast<double>(kPsnrMseEpsilon));
      if (psnr) psnr[p] = static_cast<float>(value);
      total += value;
    }
    if (coef)
      coef[p] = static_cast<float>(kTenOverLn10 * 2.0 /
                                   (static_cast<double>(n) * static_cast<double>(per_patch) *
                                    (mse + static_cast<double>(kPsnrMseEpsilon))));
  }
  total = detail::block_reduce(total, detail::SumOp{}, 0.0, scratch);
  if (loss && threadIdx.x == 0) *loss = static_cast<float>(-total / n);
}

// dpred [n, per_patch] = coef[patch] * (pred - target). vec4 needs per_patch % 4 == 0 (a pack
// never straddles two patches) and aligned pointers.
__global__ void psnr_grad_kernel(const float* pred, const float* target, const float* coef, float* dpred,
                                 size_t per_patch, size_t count, bool vec4) {
  detail::elementwise(count, vec4, [&](size_t i, auto width) {
    constexpr int W = decltype(width)::value;
    const float c = coef[i / per_patch];
    auto y = detail::load_pack<W>(pred + i);
    const auto t = detail::load_pack<W>(target + i);
#pragma unroll
    for (int j = 0; j < W; ++j) y.v[j] = c * (y.v[j] - t.v[j]);
    detail::store_pack<W>(dpred + i, y);
  });
}

// Queues the partial sums and the finalize step; returns the coefficient array inside workspace.
float* reduce_patches(const PsnrLossShape& s, const float* pred, const float* target, float* loss, float* psnr,
                      bool want_coef, float* workspace, cudaStream_t stream, const char* op) {
  const PsnrPlan pl = plan(s);
  ISONET_CHECK(pl.partials <= static_cast<size_t>(INT_MAX), op, ": too many patches (", s.n, ")");
  float* hi = workspace;
  float* lo = hi + pl.partials;
  float* mx = lo + pl.partials;
  float* coef = want_coef ? mx + pl.partials : nullptr;
  psnr_partial_kernel<<<static_cast<unsigned>(pl.partials), detail::kBlock, 0, stream>>>(
      pred, target, s.per_patch, pl.chunks, pl.len, hi, lo, mx);
  CUDA_CHECK_LAUNCH(op);
  psnr_finalize_kernel<<<1, detail::kBlock, 0, stream>>>(hi, lo, mx, s.n, pl.chunks, s.per_patch, loss, psnr, coef);
  CUDA_CHECK_LAUNCH(op);
  return coef;
}
}  // namespace

size_t psnr_loss_workspace_floats(const PsnrLossShape& s) {
  check_psnr_loss_shape(s, "psnr_loss_workspace_floats (cuda)");
  return 3 * plan(s).partials + static_cast<size_t>(s.n);
}

void psnr_loss_forward(const PsnrLossShape& s, const float* pred, const float* target, float* loss, float* psnr,
                       float* workspace, cudaStream_t stream) {
  const char* op = "psnr_loss_forward (cuda)";
  check_psnr_loss_shape(s, op);
  check_not_null(pred, op, "pred");
  check_not_null(target, op, "target");
  check_not_null(loss, op, "loss");
  check_not_null(workspace, op, "workspace");
  reduce_patches(s, pred, target, loss, psnr, false, workspace, stream, op);
}

void psnr_loss_backward(const PsnrLossShape& s, const float* pred, const float* target, float* dpred,
                        float* workspace, cudaStream_t stream) {
  const char* op = "psnr_loss_backward (cuda)";
  check_psnr_loss_shape(s, op);
  check_not_null(pred, op, "pred");
  check_not_null(target, op, "target");
  check_not_null(dpred, op, "dpred");
  check_not_null(workspace, op, "workspace");
  const float* coef = reduce_patches(s, pred, target, nullptr, nullptr, true, workspace, stream, op);
  const size_t count = static_cast<size_t>(s.n) * s.per_patch;
  const bool vec4 = s.per_patch % 4 == 0 && detail::aligned16(pred) && detail::aligned16(target) &&
                    detail::aligned16(dpred);
  psnr_grad_kernel<<<detail::grid_for_elementwise(count), detail::kBlock, 0, stream>>>(pred, target, coef, dpred,
                                                                                       s.per_patch, count, vec4);
  CUDA_CHECK_LAUNCH(op);
}

}  // namespace isonet::gpu
