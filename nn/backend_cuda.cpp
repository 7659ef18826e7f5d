// backend_cuda.cpp: the Backend on a CUDA device. It owns one stream and queues every op
// (isonet::gpu::, kernels/*.cu) and every memory operation on it, so a training step needs no host
// synchronization until the loss is downloaded. The stream is a blocking one (cudaStreamCreate,
// not cudaStreamNonBlocking) on purpose: work that other code queues on the legacy default stream
// (Tensor copies, device_memset) is then ordered with ours without extra events.
// Compiled in every build; without the CUDA backend make_cuda_backend() throws a clear error.
#include "nn/backend.h"

#include "kernels/error.h"

#if ISONET_HAS_CUDA
#include "kernels/add.h"
#include "kernels/cuda_check.h"
#include "kernels/relu.h"
#endif

namespace isonet {

#if ISONET_HAS_CUDA
namespace {

class CudaBackend final : public Backend {
 public:
  CudaBackend() : Backend(Device::CUDA) {
    if (!cuda_available()) fail("CUDA backend: no usable CUDA device (no GPU, or the driver is missing or too old)");
    CUDA_CHECK("creating the CUDA stream", cudaStreamCreate(&stream_));
  }
  ~CudaBackend() override {
    // Destructors only log: the stream's queued work is finished before the workspace is freed.
    cudaError_t err = cudaStreamSynchronize(stream_);
    if (err == cudaSuccess) err = cudaStreamDestroy(stream_);
    if (err != cudaSuccess) cudaGetLastError();
  }
  cudaStream_t stream() const override { return stream_; }

  void zero(void* p, size_t bytes) override {
    if (bytes) CUDA_CHECK("zeroing GPU memory", cudaMemsetAsync(p, 0, bytes, stream_));
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes) CUDA_CHECK("copying GPU memory", cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
  }
  void upload(void* dst, const void* host_src, size_t bytes) override {
    if (!bytes) return;
    // From pageable host memory the copy is staged before the call returns, so the caller may
    // reuse its buffer; the driver may first wait for the stream's earlier work (the previous
    // step), which still lets the host prepare the next batch while the GPU runs the current one.
    // Ordering on our stream keeps the copy behind the previous step's reads of `dst`.
    CUDA_CHECK("copying a batch to the GPU", cudaMemcpyAsync(dst, host_src, bytes, cudaMemcpyHostToDevice, stream_));
  }
  void download(void* host_dst, const void* src, size_t bytes) override {
    if (!bytes) return;
    CUDA_CHECK("copying results from the GPU", cudaMemcpyAsync(host_dst, src, bytes, cudaMemcpyDeviceToHost, stream_));
    synchronize();
  }
  void synchronize() override { CUDA_CHECK("waiting for the GPU", cudaStreamSynchronize(stream_)); }

  size_t psnr_loss_workspace_floats(const PsnrLossShape& s) const override {
    return gpu::psnr_loss_workspace_floats(s);
  }

  void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                      bool fuse_relu) override {
    gpu::conv2d_forward(s, x, weight, bias, y, fuse_relu, workspace(conv2d_workspace_floats(s)), stream_);
  }
  void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx) override {
    gpu::conv2d_backward_data(s, dy, weight, dx, workspace(conv2d_workspace_floats(s)), stream_);
  }
  void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight,
                               float* dbias) override {
    gpu::conv2d_backward_weights(s, x, dy, dweight, dbias, workspace(conv2d_workspace_floats(s)), stream_);
  }
  void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) override {
    gpu::maxpool2d_forward(s, x, y, argmax, stream_);
  }
  void maxpool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx) override {
    gpu::maxpool2d_backward(s, dy, argmax, dx, stream_);
  }
  void upsample2d_forward(const Upsample2dShape& s, const float* x, float* y) override {
    gpu::upsample2d_forward(s, x, y, stream_);
  }
  void upsample2d_backward(const Upsample2dShape& s, const float* dy, float* dx) override {
    gpu::upsample2d_backward(s, dy, dx, stream_);
  }
  void concat_forward(const ConcatShape& s, const float* a, const float* b, float* y) override {
    gpu::concat_forward(s, a, b, y, stream_);
  }
  void concat_backward(const ConcatShape& s, const float* dy, float* da, float* db) override {
    gpu::concat_backward(s, dy, da, db, stream_);
  }
  void add_forward(const float* a, const float* b, float* y, size_t count) override {
    gpu::add_forward(a, b, y, count, stream_);
  }
  void add_accumulate(const float* x, float* y, size_t count) override { gpu::add_accumulate(x, y, count, stream_); }
  void relu_backward(const float* dy, const float* y, float* dx, size_t count) override {
    gpu::relu_backward(dy, y, dx, count, stream_);
  }
  void dropout_forward(const DropoutParams& d, const float* x, float* y, size_t count) override {
    gpu::dropout_forward(d, x, y, count, stream_);
  }
  void dropout_backward(const DropoutParams& d, const float* dy, float* dx, size_t count) override {
    gpu::dropout_backward(d, dy, dx, count, stream_);
  }
  void psnr_loss_forward(const PsnrLossShape& s, const float* pred, const float* target, float* loss,
                         float* psnr) override {
    gpu::psnr_loss_forward(s, pred, target, loss, psnr, workspace(psnr_loss_workspace_floats(s)), stream_);
  }
  void psnr_loss_backward(const PsnrLossShape& s, const float* pred, const float* target, float* dpred) override {
    gpu::psnr_loss_backward(s, pred, target, dpred, workspace(psnr_loss_workspace_floats(s)), stream_);
  }
  void adam_update(const AdamParams& a, long step, float* param, const float* grad, float* m, float* v,
                   size_t count) override {
    gpu::adam_update(a, step, param, grad, m, v, count, stream_);
  }
  void adam_update_scalars(const AdamParams& a, const AdamStepScalars* scalars, float* param, const float* grad,
                           float* m, float* v, size_t count) override {
    gpu::adam_update_scalars(a, scalars, param, grad, m, v, count, stream_);
  }

  std::unique_ptr<RecordedWork> record(std::function<void()> work) override;

 private:
  cudaStream_t stream_ = nullptr;
};

// A CUDA graph instantiated from a capture of the backend's stream; replay() launches it there.
class CudaGraph final : public RecordedWork {
 public:
  CudaGraph(cudaGraphExec_t exec, cudaStream_t stream) : exec_(exec), stream_(stream) {}
  ~CudaGraph() override {
    if (cudaGraphExecDestroy(exec_) != cudaSuccess) cudaGetLastError();  // destructors only log
  }
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;
  void replay() override { CUDA_CHECK("replaying a CUDA graph", cudaGraphLaunch(exec_, stream_)); }

 private:
  cudaGraphExec_t exec_;
  cudaStream_t stream_;
};

std::unique_ptr<RecordedWork> CudaBackend::record(std::function<void()> work) {
  const char* op = "recording a CUDA graph";
  // Thread-local mode: potentially unsafe API calls are checked for this thread only. Our stream
  // is a blocking one, so while the capture runs the legacy default stream is unusable for every
  // thread (cudaMemcpy/cudaMemset and device_copy fail with cudaErrorStreamCaptureImplicit): no
  // other thread may use CUDA through the legacy stream during a recording (nothing does today).
  CUDA_CHECK(op, cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
  cudaGraph_t graph = nullptr;
  try {
    work();
  } catch (...) {
    // End the capture so the stream is usable again; the error that stopped `work` is the one to report.
    if (cudaStreamEndCapture(stream_, &graph) == cudaSuccess && graph) cudaGraphDestroy(graph);
    cudaGetLastError();
    throw;
  }
  cudaError_t err = cudaStreamEndCapture(stream_, &graph);
  cudaGraphExec_t exec = nullptr;
  if (err == cudaSuccess) {
    err = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
  }
  if (err != cudaSuccess) cudaGetLastError();  // clear it, so no later launch check reports it
  CUDA_CHECK(op, err);
  return std::make_unique<CudaGraph>(exec, stream_);
}

}  // namespace

std::unique_ptr<Backend> make_cuda_backend() { return std::make_unique<CudaBackend>(); }

#else

std::unique_ptr<Backend> make_cuda_backend() {
  fail("CUDA backend: this isonet was built without the CUDA backend");
}

#endif

}  // namespace isonet
