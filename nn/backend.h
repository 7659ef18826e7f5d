// backend.h: the one interface the networks are written against. A Backend runs every op of
// kernels/*.h on one device: the CPU implementation calls isonet::cpu::, the CUDA implementation
// calls isonet::gpu:: on the single stream it owns (all GPU work of a Backend is ordered on that
// stream, so no op needs an explicit synchronization). It also owns the op workspace (im2col
// buffers, reduction scratch), grown only when a larger shape is reserved, never inside a step.
//
// All float/int pointers passed to a Backend are memory of that backend's device (allocated with
// alloc()). Shapes are documented per method as [n,c,h,w].
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>

#include "kernels/adam.h"
#include "kernels/concat.h"
#include "kernels/conv2d.h"
#include "kernels/device.h"
#include "kernels/dropout.h"
#include "kernels/maxpool2d.h"
#include "kernels/psnr_loss.h"
#include "kernels/upsample2d.h"

namespace isonet {

// Work recorded once by Backend::record and queued again by replay().
class RecordedWork {
 public:
  virtual ~RecordedWork();
  // Queues the recorded ops again, with the same pointers and arguments.
  virtual void replay() = 0;
};

class Backend {
 public:
  explicit Backend(Device device) : device_(device) {}
  virtual ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  Device device() const { return device_; }
  // The CUDA stream all work is queued on (nullptr on the CPU).
  virtual cudaStream_t stream() const { return nullptr; }

  // ---- memory (device memory of this backend) ----
  void* alloc(size_t bytes) { return device_alloc(device_, bytes); }
  void free(void* p, size_t bytes) noexcept { device_free(device_, p, bytes); }
  // Ordered on the stream: zero bytes, device->device copy.
  virtual void zero(void* p, size_t bytes) = 0;
  virtual void copy(void* dst, const void* src, size_t bytes) = 0;
  // host -> device; the host buffer may be reused as soon as this returns.
  virtual void upload(void* dst, const void* host_src, size_t bytes) = 0;
  // device -> host; waits for the work queued before it (the one host sync of a training step).
  virtual void download(void* host_dst, const void* src, size_t bytes) = 0;
  // Waits for all queued work.
  virtual void synchronize() = 0;

  // ---- workspace ----
  // Makes sure the workspace holds at least `floats` floats (allocates only when it grows; the
  // networks reserve their maximum when they lay out their buffers, so steps never allocate).
  void reserve_workspace(size_t floats);
  size_t workspace_floats() const { return workspace_floats_; }
  size_t conv2d_workspace_floats(const Conv2dShape& s) const;
  virtual size_t psnr_loss_workspace_floats(const PsnrLossShape& s) const = 0;

  // ---- ops (contracts in kernels/*.h; the workspace is the backend's own) ----
  // x [n,c_in,h,w], weight [c_out,c_in,k,k], bias [c_out] -> y [n,c_out,h,w]
  virtual void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias,
                              float* y, bool fuse_relu) = 0;
  // dy [n,c_out,h,w], weight -> dx [n,c_in,h,w] (overwritten)
  virtual void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx) = 0;
  // x, dy -> dweight [c_out,c_in,k,k], dbias [c_out] (overwritten)
  virtual void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight,
                                       float* dbias) = 0;
  // x [n,c,h,w] -> y, argmax [n,c,h/2,w/2]
  virtual void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) = 0;
  virtual void maxpool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx) = 0;
  // x [n,c,h,w] -> y [n,c,2h,2w] and back
  virtual void upsample2d_forward(const Upsample2dShape& s, const float* x, float* y) = 0;
  virtual void upsample2d_backward(const Upsample2dShape& s, const float* dy, float* dx) = 0;
  // a [n,c_a,h,w], b [n,c_b,h,w] <-> y [n,c_a+c_b,h,w]
  virtual void concat_forward(const ConcatShape& s, const float* a, const float* b, float* y) = 0;
  virtual void concat_backward(const ConcatShape& s, const float* dy, float* da, float* db) = 0;
  // elementwise [count]
  virtual void add_forward(const float* a, const float* b, float* y, size_t count) = 0;
  virtual void add_accumulate(const float* x, float* y, size_t count) = 0;
  virtual void relu_backward(const float* dy, const float* y, float* dx, size_t count) = 0;
  virtual void dropout_forward(const DropoutParams& d, const float* x, float* y, size_t count) = 0;
  virtual void dropout_backward(const DropoutParams& d, const float* dy, float* dx, size_t count) = 0;
  // pred, target [n, per_patch] -> loss (1 float of device memory), psnr [n] or nullptr
  virtual void psnr_loss_forward(const PsnrLossShape& s, const float* pred, const float* target, float* loss,
                                 float* psnr) = 0;
  virtual void psnr_loss_backward(const PsnrLossShape& s, const float* pred, const float* target,
                                  float* dpred) = 0;
  // param, grad, m, v [count]; step 1-based
  virtual void adam_update(const AdamParams& a, long step, float* param, const float* grad, float* m, float* v,
                           size_t count) = 0;
  // The same with the step's scalars read from `scalars` (memory of this backend) when it runs.
  virtual void adam_update_scalars(const AdamParams& a, const AdamStepScalars* scalars, float* param,
                                   const float* grad, float* m, float* v, size_t count) = 0;

  // ---- recording (CUDA graphs) ----
  // Records the ops `work` queues on this backend into a RecordedWork whose replay() queues them
  // again with the same pointers and arguments; what changes between replays must be read from
  // this backend's memory when the ops run (DropoutParams::step_offset, adam_update_scalars).
  // CUDA: a CUDA graph captured from the stream; the ops do NOT run while they are recorded (call
  // replay() to run them). The CPU has no graphs: its replay() calls work() again. `work` must not
  // synchronize, allocate, grow the workspace or read results back. Throws isonet::Error when the
  // capture fails (the stream is left usable).
  virtual std::unique_ptr<RecordedWork> record(std::function<void()> work);
  // Times the workspace was (re)allocated: pointers a recording holds are stale when it changed.
  size_t workspace_allocations() const { return workspace_allocations_; }

 protected:
  // The workspace, at least `floats` long (grows if a shape was not reserved beforehand).
  float* workspace(size_t floats);

 private:
  Device device_;
  float* workspace_ = nullptr;
  size_t workspace_floats_ = 0;
  size_t workspace_allocations_ = 0;
};

// Floats of op workspace a conv of shape s needs on `device` (cpu:: or gpu::conv2d_workspace_floats),
// answered without a backend or a GPU, so memory can be planned before anything is allocated
// (for the shapes Conv2dAlgo::Auto runs; sizing a CUDA Conv2dAlgo::Fft shape creates cuFFT plans
// and needs a GPU). CUDA in a build without it: isonet::Error.
size_t conv2d_workspace_floats(Device device, const Conv2dShape& s);

// A backend for `device`. CUDA: throws isonet::Error when built without CUDA or no GPU is usable.
std::unique_ptr<Backend> make_backend(Device device);

// Owning buffer of backend memory (RAII): freed through the backend that made it.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(Backend& backend, size_t bytes) : backend_(&backend), bytes_(bytes), ptr_(backend.alloc(bytes)) {}
  ~DeviceBuffer() { reset(); }
  DeviceBuffer(DeviceBuffer&& o) noexcept { *this = std::move(o); }
  DeviceBuffer& operator=(DeviceBuffer&& o) noexcept;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void reset() noexcept;
  void* get() const { return ptr_; }
  float* floats() const { return static_cast<float*>(ptr_); }
  size_t bytes() const { return bytes_; }

 private:
  Backend* backend_ = nullptr;
  size_t bytes_ = 0;
  void* ptr_ = nullptr;
};

}  // namespace isonet
