// backend.cpp: the device-independent parts of Backend (workspace and its per-device size query,
// DeviceBuffer) and the factory.
#include "nn/backend.h"

#include <utility>

#include "kernels/error.h"

namespace isonet {

std::unique_ptr<Backend> make_cpu_backend();
std::unique_ptr<Backend> make_cuda_backend();  // backend_cuda.cpp; throws without CUDA

std::unique_ptr<Backend> make_backend(Device device) {
  return device == Device::CPU ? make_cpu_backend() : make_cuda_backend();
}

size_t conv2d_workspace_floats(Device device, const Conv2dShape& s) {
  if (device == Device::CPU) return cpu::conv2d_workspace_floats(s);
#if ISONET_HAS_CUDA
  return gpu::conv2d_workspace_floats(s);
#else
  fail("conv2d_workspace_floats: this isonet was built without the CUDA backend");
#endif
}

size_t Backend::conv2d_workspace_floats(const Conv2dShape& s) const {
  return isonet::conv2d_workspace_floats(device_, s);
}

Backend::~Backend() { device_free(device_, workspace_, workspace_floats_ * sizeof(float)); }

RecordedWork::~RecordedWork() = default;

namespace {
// The CPU's "recording": nothing is queued, so replaying is running the work again.
class RerunWork final : public RecordedWork {
 public:
  explicit RerunWork(std::function<void()> work) : work_(std::move(work)) {}
  void replay() override { work_(); }

 private:
  std::function<void()> work_;
};
}  // namespace

std::unique_ptr<RecordedWork> Backend::record(std::function<void()> work) {
  return std::make_unique<RerunWork>(std::move(work));
}

void Backend::reserve_workspace(size_t floats) {
  if (floats <= workspace_floats_) return;
  // The old workspace may still be read by queued work: wait before freeing it.
  synchronize();
  device_free(device_, workspace_, workspace_floats_ * sizeof(float));
  workspace_ = nullptr;
  workspace_floats_ = 0;
  workspace_ = static_cast<float*>(device_alloc(device_, floats * sizeof(float)));
  workspace_floats_ = floats;
  ++workspace_allocations_;
}

float* Backend::workspace(size_t floats) {
  reserve_workspace(floats);
  return workspace_;
}

DeviceBuffer& DeviceBuffer::operator=(DeviceBuffer&& o) noexcept {
  if (this != &o) {
    reset();
    backend_ = std::exchange(o.backend_, nullptr);
    bytes_ = std::exchange(o.bytes_, 0);
    ptr_ = std::exchange(o.ptr_, nullptr);
  }
  return *this;
}

void DeviceBuffer::reset() noexcept {
  if (backend_ && ptr_) backend_->free(ptr_, bytes_);
  ptr_ = nullptr;
  bytes_ = 0;
}

}  // namespace isonet
