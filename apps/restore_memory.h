// restore_memory.h: the memory `isonet restore` holds, computed exactly for the calls it makes
// (nothing is allocated and no backend or GPU is needed), and the plan that keeps it within
// --max-memory: slices in batches, or strips/tiles of a slice, the largest that fit.
//
// Why exact rather than a fit: the op workspace is not linear in the pixels of a call. The CPU
// conv picks the frequency-domain path (kernels/conv2d_fft.h) by shape, and its workspace holds
// the spectra of the c_in*c_out weights at the padded image size whatever the batch, so the former
// fit at batch 1 on small patches underestimated IsoNet-2 at batches 4-16 of 256^2 to 512^2 slices
// by 1.4-2.5x (measured against the bytes planned), over the budget. Here every call is priced
// with the network's own layout (Network::plan_memory) and the device's per-layer
// conv2d_workspace_floats, for the algorithm the restore runs each layer with.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "kernels/device.h"
#include "nn/network.h"

namespace isonet::app {

// Bytes a restore holds, by buffer. Each buffer only grows during a run (the trainer's arenas and
// the backend's workspace are laid out again in place when they are large enough, freeing the old
// one first when they grow; the host vectors keep their capacity), so what a run holds after
// several calls is the componentwise max over them (max_with).
struct RestoreMemory {
  size_t params = 0;       // device: weights, gradients, Adam m and v (the Trainer's Parameters)
  size_t activations = 0;  // device: the network's arena (Network::plan_memory)
  size_t io = 0;           // device: the trainer's input and loss buffers
  size_t workspace = 0;    // device: the op workspace (the largest conv2d_workspace_floats)
  size_t slices = 0;       // host: the gathered input slices of one call and their outputs
  size_t tiles = 0;        // host: one tile's input and output
  size_t device_bytes() const { return params + activations + io + workspace; }
  size_t total() const { return device_bytes() + slices + tiles; }
  RestoreMemory max_with(const RestoreMemory& o) const;
};

// The device memory of inference calls of one architecture on one device.
class InferenceMemory {
 public:
  // conv: the Trainer's (TrainerOptions::conv), which decides the op workspace.
  InferenceMemory(Architecture arch, Device device, ConvSettings conv = {});
  // What a Trainer on this device holds after predict() on [n,1,h,w] as its only call: params,
  // activations, io and workspace (slices and tiles 0). Equal to the bytes it allocates.
  RestoreMemory call(int n, int h, int w);

 private:
  std::unique_ptr<Network> net_;  // measured only (each query overwrites its plan)
  Device device_;
  size_t params_ = 0;
};

// The tiles along one axis of length `len` with cores of `core` pixels (tile origins on multiples
// of core) and `margin` pixels of context each side, clipped at the ends: core [a0, a1), the
// region the network sees [r0, r1).
struct TileSpan {
  int a0 = 0, a1 = 0, r0 = 0, r1 = 0;
};
std::vector<TileSpan> tile_spans(int len, int core, int margin);

// How one orientation of slices goes through the network.
struct SlicePlan {
  int batch = 1;       // slices per call (1 when tiling)
  int th = 0, tw = 0;  // tile cores (0: whole slices)
};

// What a run holds, starting from `held`, once `count` slices [Hp, Wp] went through `plan` with
// `margin` pixels of tile context: every call the plan makes is priced (the last, partial batch
// and the clipped edge tiles included) together with restore's host buffers.
RestoreMemory plan_memory(InferenceMemory& mem, const RestoreMemory& held, const SlicePlan& plan, int count, int Hp,
                          int Wp, int margin);

// The plan for `count` slices [Hp, Wp] (multiples of 4) whose plan_memory(..., held, ...).total()
// fits `budget` bytes, trying from the largest calls down: whole slices in batches of up to
// min(max_batch, count); else strips along the longer axis, the shorter one whole, with cores of
// at least 16 pixels; else square tiles with cores of at least 4; cores are multiples of 4 (so the
// pooling grid is the untiled one) with `margin` pixels of context. Each candidate is priced
// exactly, so the search needs no assumption on how memory grows with the call. Throws
// isonet::Error with the memory the smallest tiles need when nothing fits.
SlicePlan plan_slices(InferenceMemory& mem, const RestoreMemory& held, int count, int Hp, int Wp, int max_batch,
                      size_t budget, int margin);

}  // namespace isonet::app
