// dropout.h: inverted dropout with a mask recomputed from a counter-based hash (rng.h) of
// (seed, step, element index): kept elements are scaled by 1/(1-p), dropped ones are 0. The CPU
// and GPU masks are bit-identical and the backward recomputes the mask instead of storing it.
#pragma once
#include <cstddef>
#include <cstdint>

#include "kernels/stream.h"

namespace isonet {

struct DropoutParams {
  float p = 0.2f;      // drop probability in [0, 1)
  uint64_t seed = 0;   // run seed
  uint64_t step = 0;   // training step (and layer salt): a fresh mask per step and per layer
  // When set, *step_offset is added to step: one uint64 in the memory of the device that runs the
  // op, read when the op runs (not when it is queued). This is how a recorded CUDA graph replays
  // a later step without new kernel arguments (nn/trainer.h). nullptr: step alone.
  const uint64_t* step_offset = nullptr;
};

// True when element `index` is kept (identical on CPU and GPU), for the mask key `step` (d.step
// plus the offset, when there is one; dropout_keep reads neither d.step_offset nor device memory).
bool dropout_keep(const DropoutParams& d, uint64_t index);

// Throws isonet::Error naming `op` unless p is in [0, 1) (shared by CPU and CUDA entries).
void check_dropout_params(const DropoutParams& d, const char* op);
// The scale of kept elements, 1/(1-p), computed in float once per call; both backends use this
// value so that their outputs are bit-identical.
float dropout_scale(const DropoutParams& d);

namespace cpu {
// y[i] = keep(i) ? x[i] / (1-p) : 0; y may alias x.
void dropout_forward(const DropoutParams& d, const float* x, float* y, size_t count);
// dx[i] = keep(i) ? dy[i] / (1-p) : 0; dx may alias dy.
void dropout_backward(const DropoutParams& d, const float* dy, float* dx, size_t count);
}  // namespace cpu

namespace gpu {
void dropout_forward(const DropoutParams& d, const float* x, float* y, size_t count, cudaStream_t stream);
void dropout_backward(const DropoutParams& d, const float* dy, float* dx, size_t count, cudaStream_t stream);
}  // namespace gpu

}  // namespace isonet
