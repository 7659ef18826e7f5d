// restore_memory.h: how much device memory one inference call of a network needs, measured on
// the network itself: it is planned (activations carved, op workspace reserved) on a fresh
// backend of the device at two patch sizes, and the bytes are fitted as fixed + per_pixel *
// (n*h*w). Parameters (weights, gradients and Adam moments the Trainer allocates) are added to
// the fixed part, the trainer's batch buffer and the host staging to the per-pixel part.
#pragma once
#include <cstddef>

#include "kernels/device.h"
#include "nn/network.h"

namespace isonet::app {

struct MemoryModel {
  double fixed = 0;      // bytes independent of the batch size
  double per_pixel = 0;  // bytes per input pixel (n*h*w) of one call

  double bytes_for(double pixels) const { return fixed + per_pixel * pixels; }
  // Pixels of one call that fit in `budget` bytes (0 when not even the fixed part fits).
  double pixels_within(size_t budget) const;
};

MemoryModel inference_memory_model(Architecture arch, Device device);

}  // namespace isonet::app
