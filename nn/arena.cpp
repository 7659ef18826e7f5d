// arena.cpp: bump allocation inside the arena's single buffer (see arena.h).
#include "nn/arena.h"

#include "kernels/error.h"

namespace isonet {

void* Arena::take(size_t bytes) {
  size_t start = (offset_ + kAlignment - 1) / kAlignment * kAlignment;
  offset_ = start + bytes;
  // While measuring there is no memory yet: a null placeholder is handed out.
  if (!cursor_base_) return nullptr;
  ISONET_CHECK(offset_ <= buffer_.bytes(), "arena: layout changed between measuring and carving (",
               offset_, " > ", buffer_.bytes(), " bytes)");
  return cursor_base_ + start;
}

void Arena::grow(Backend& backend, size_t bytes) {
  if (bytes <= buffer_.bytes() && buffer_.get()) return;
  // Queued work may still use the old buffer; DeviceBuffer's free (cudaFree) waits for it.
  backend.synchronize();
  buffer_.reset();
  buffer_ = DeviceBuffer(backend, bytes == 0 ? kAlignment : bytes);
  base_ = static_cast<char*>(buffer_.get());
  ++allocations_;
}

}  // namespace isonet
