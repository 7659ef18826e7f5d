// restore_memory.cpp: the measured memory model of inference (see restore_memory.h).
#include "apps/restore_memory.h"

#include <algorithm>

#include "nn/arena.h"
#include "nn/backend.h"

namespace isonet::app {

double MemoryModel::pixels_within(size_t budget) const {
  const double free = double(budget) - fixed;
  return free > 0 && per_pixel > 0 ? free / per_pixel : 0.0;
}

MemoryModel inference_memory_model(Architecture arch, Device device) {
  // Bytes of activations + workspace of one inference plan of [1,1,s,s] on a fresh backend.
  auto measure = [&](int s) {
    auto backend = make_backend(device);
    auto net = make_network(arch);
    Arena arena;
    net->plan(*backend, arena, 1, s, s, /*training=*/false);
    return double(arena.capacity_bytes()) + double(backend->workspace_floats()) * sizeof(float);
  };
  const int s1 = 32, s2 = 96;
  const double b1 = measure(s1), b2 = measure(s2);
  const double p1 = double(s1) * s1, p2 = double(s2) * s2;
  MemoryModel m;
  // Activations grow with the pixels; +3 floats per pixel: the trainer's input buffer on the
  // device and the host gather/scatter buffers of the slices.
  m.per_pixel = std::max(0.0, (b2 - b1) / (p2 - p1)) + 3.0 * sizeof(float);
  const double params = double(make_network(arch)->layout().total_floats()) * sizeof(float) * 4;  // w, grad, m, v
  m.fixed = std::max(0.0, b1 - (m.per_pixel - 3.0 * sizeof(float)) * p1) + params;
  // 10% headroom for allocation granularity and anything the fit misses.
  m.per_pixel *= 1.1;
  m.fixed *= 1.1;
  return m;
}

}  // namespace isonet::app
