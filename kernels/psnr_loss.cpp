// psnr_loss.cpp: CPU twin of the paper's PSNR loss (psnr_loss.h) and its gradient.
// Per patch p with m = per_patch elements:
//   mse_p = (1/m) sum_i (y_i - t_i)^2,  psnr_p = 20 log10(max(max_i t_i, floor)) - 10 log10(mse_p + eps)
//   L = -(1/n) sum_p psnr_p
//   dL/dy_i = (1/n) (10/ln 10) (2 (y_i - t_i) / m) / (mse_p + eps)      (the max term has no y)
// Sums are accumulated in double: a 128x128 patch has 16384 terms and the loss is compared with
// the GPU's and PyTorch's to ~1e-6 relative.
#include "kernels/psnr_loss.h"

#include <cmath>

#include "kernels/cpu_parallel.h"
#include "kernels/op_checks.h"

namespace isonet::cpu {

namespace {
struct PatchStats {
  double mse;   // mean squared error over the patch
  double tmax;  // max of the target, NaN if the target holds a NaN
};

PatchStats patch_stats(const float* y, const float* t, size_t m) {
  double sq = 0.0;
  float tmax = t[0];
  for (size_t i = 0; i < m; ++i) {
    double d = static_cast<double>(y[i]) - static_cast<double>(t[i]);
    sq += d * d;
    // NaN wins, as in max pooling: a corrupt target must not hide behind the max.
    if (!std::isnan(tmax) && (std::isnan(t[i]) || t[i] > tmax)) tmax = t[i];
  }
  return {sq / static_cast<double>(m), static_cast<double>(tmax)};
}

// 10 / ln(10): d(10 log10 u)/du = 10 / (u ln 10).
constexpr double kTenOverLn10 = 4.3429448190325182765;
}  // namespace

void psnr_loss_forward(const PsnrLossShape& s, const float* pred, const float* target, float* loss, float* psnr) {
  const char* op = "psnr_loss_forward";
  check_psnr_loss_shape(s, op);
  check_not_null(pred, op, "pred");
  check_not_null(target, op, "target");
  check_not_null(loss, op, "loss");
  double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (s.n * s.per_patch >= kParallelMinElements)
  for (int p = 0; p < s.n; ++p) {
    const size_t off = static_cast<size_t>(p) * s.per_patch;
    PatchStats st = patch_stats(pred + off, target + off, s.per_patch);
    double tmax = std::isnan(st.tmax) ? st.tmax : std::fmax(st.tmax, static_cast<double>(kPsnrMaxFloor));
    double value = 20.0 * std::log10(tmax) - 10.0 * std::log10(st.mse + static_cast<double>(kPsnrMseEpsilon));
    if (psnr) psnr[p] = static_cast<float>(value);
    total += value;
  }
  *loss = static_cast<float>(-total / s.n);
}

void psnr_loss_backward(const PsnrLossShape& s, const float* pred, const float* target, float* dpred) {
  const char* op = "psnr_loss_backward";
  check_psnr_loss_shape(s, op);
  check_not_null(pred, op, "pred");
  check_not_null(target, op, "target");
  check_not_null(dpred, op, "dpred");
  const size_t m = s.per_patch;
#pragma omp parallel for schedule(static) if (s.n * m >= kParallelMinElements)
  for (int p = 0; p < s.n; ++p) {
    const size_t off = static_cast<size_t>(p) * m;
    const double mse = patch_stats(pred + off, target + off, m).mse;
    const float coef = static_cast<float>(kTenOverLn10 * 2.0 /
                                          (static_cast<double>(s.n) * static_cast<double>(m) *
                                           (mse + static_cast<double>(kPsnrMseEpsilon))));
    for (size_t i = 0; i < m; ++i) dpred[off + i] = coef * (pred[off + i] - target[off + i]);
  }
}

}  // namespace isonet::cpu
