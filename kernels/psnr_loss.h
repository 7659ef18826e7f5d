// psnr_loss.h: the paper's PSNR loss (eq. 3), per patch:
//   L = (1/n) sum_p -[ 20 log10(max_i t_p,i) - 10 log10(mse_p + eps) ],  mse_p = mean_i (y_p,i - t_p,i)^2
// where t is the target patch (the lateral plane g_xy) and y the network output. We average over
// the batch instead of summing (the paper's sum): Adam is invariant to that constant scale, and a
// mean keeps the printed loss independent of the batch size. eps = kPsnrMseEpsilon keeps log10
// finite for a perfect prediction. max_i t is clamped below at kPsnrMaxFloor.
#pragma once
#include <cstddef>

#include "kernels/stream.h"

namespace isonet {

constexpr float kPsnrMseEpsilon = 1e-10f;
constexpr float kPsnrMaxFloor = 1e-10f;

struct PsnrLossShape {
  int n = 1;                // patches
  size_t per_patch = 1;     // elements per patch (c*h*w)
};

// Throws isonet::Error naming `op` unless n >= 1 and per_patch >= 1 (shared by CPU and CUDA).
void check_psnr_loss_shape(const PsnrLossShape& s, const char* op);

namespace cpu {
// pred, target [n, per_patch] -> *loss (scalar), psnr [n] (per-patch PSNR in dB, may be nullptr).
void psnr_loss_forward(const PsnrLossShape& s, const float* pred, const float* target, float* loss, float* psnr);
// -> dpred [n, per_patch] = dL/dpred (overwritten).
void psnr_loss_backward(const PsnrLossShape& s, const float* pred, const float* target, float* dpred);
}  // namespace cpu

namespace gpu {
// loss (1 float) and psnr ([n] or nullptr) are device pointers; no host synchronization.
// workspace: gpu::psnr_loss_workspace_floats(s) device floats.
size_t psnr_loss_workspace_floats(const PsnrLossShape& s);
void psnr_loss_forward(const PsnrLossShape& s, const float* pred, const float* target, float* loss, float* psnr,
                       float* workspace, cudaStream_t stream);
void psnr_loss_backward(const PsnrLossShape& s, const float* pred, const float* target, float* dpred,
                        float* workspace, cudaStream_t stream);
}  // namespace gpu

}  // namespace isonet
