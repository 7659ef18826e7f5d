// adam.h: one fused Adam update over a flat parameter array (Kingma & Ba 2014).
// Epsilon convention: PyTorch's (torch.optim.Adam), epsilon added AFTER the bias correction:
//   m = b1 m + (1-b1) g ;  v = b2 v + (1-b2) g^2
//   p -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// (Keras, which the paper used, adds epsilon to the uncorrected sqrt(v); the two differ only
// while sqrt(v) is comparable to eps.) The bias corrections are computed once per step in double
// on the host and passed as floats, identically for the CPU and GPU paths.
#pragma once
#include <cstddef>

#include "kernels/stream.h"

namespace isonet {

struct AdamParams {
  float lr = 5e-3f;   // the paper's learning rate
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
};

// Per-step scalars derived from AdamParams and the 1-based step t.
struct AdamStepScalars {
  float step_size;        // lr / (1 - beta1^t)
  float inv_sqrt_bc2;     // 1 / sqrt(1 - beta2^t)
};
AdamStepScalars adam_step_scalars(const AdamParams& a, long step);
// adam_step_scalars validates too: throws isonet::Error unless step >= 1, lr >= 0 and finite,
// beta1 and beta2 in [0, 1), eps >= 0 and finite. Shared by the CPU and CUDA entries.

// adam_update_scalars: the same update with the step's scalars read from `scalars`, one
// AdamStepScalars in the memory of the device that runs it, read when the update runs (not when it
// is queued): how a recorded CUDA graph replays later steps (nn/trainer.h). The values must be
// adam_step_scalars(a, t) of the step t, for results identical to adam_update(a, t, ...).

namespace cpu {
// param, grad, m, v [count]; step is 1-based.
void adam_update(const AdamParams& a, long step, float* param, const float* grad, float* m, float* v, size_t count);
void adam_update_scalars(const AdamParams& a, const AdamStepScalars* scalars, float* param, const float* grad,
                         float* m, float* v, size_t count);
}  // namespace cpu

namespace gpu {
void adam_update(const AdamParams& a, long step, float* param, const float* grad, float* m, float* v, size_t count,
                 cudaStream_t stream);
void adam_update_scalars(const AdamParams& a, const AdamStepScalars* scalars, float* param, const float* grad,
                         float* m, float* v, size_t count, cudaStream_t stream);
}  // namespace gpu

}  // namespace isonet
