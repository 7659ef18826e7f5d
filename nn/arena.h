// arena.h: one device allocation carved into the activation and scratch buffers of a network.
// Layout is done by running the same carving function twice: once to measure (no memory, the
// returned pointers are placeholders; measure() alone answers "how many bytes" without allocating)
// and once after the arena has grown to fit. The arena only ever grows, so shrinking a batch
// reuses the memory, and a training loop with a fixed batch and patch size allocates nothing
// after its first step.
#pragma once
#include <cstddef>
#include <cstdint>

#include "nn/backend.h"

namespace isonet {

class Arena {
 public:
  // Buffers start on 256-byte boundaries (coalesced, vectorizable access on both devices).
  static constexpr size_t kAlignment = 256;

  // Lays out buffers: calls carve(*this) to measure, grows the allocation on `backend` if needed
  // (keeping nothing: contents are not preserved), then calls carve(*this) again; the pointers
  // handed out during the second call are valid until the next layout.
  template <typename Carve>
  void layout(Backend& backend, Carve&& carve) {
    grow(backend, measure(carve));
    begin(base_);
    carve(*this);
  }

  // Bytes a layout by `carve` takes (what layout() allocates on a fresh arena), without
  // allocating: carve runs on a measuring arena and receives null placeholder pointers.
  template <typename Carve>
  static size_t measure(Carve&& carve) {
    Arena probe;
    carve(probe);
    return probe.offset_;
  }

  float* floats(size_t count) { return static_cast<float*>(take(count * sizeof(float))); }
  int32_t* ints(size_t count) { return static_cast<int32_t*>(take(count * sizeof(int32_t))); }

  size_t capacity_bytes() const { return buffer_.bytes(); }
  // Number of times the arena allocated (tests use it to prove steps do not allocate).
  size_t allocations() const { return allocations_; }

 private:
  void begin(char* base) {
    cursor_base_ = base;
    offset_ = 0;
  }
  void* take(size_t bytes);
  void grow(Backend& backend, size_t bytes);

  DeviceBuffer buffer_;
  char* base_ = nullptr;
  char* cursor_base_ = nullptr;  // nullptr while measuring
  size_t offset_ = 0;
  size_t allocations_ = 0;
};

}  // namespace isonet
