// tf32_emulation.h: a Backend that computes what the CUDA TF32 tensor-core convolutions compute
// (kernels/conv2d_tf32.cu), on the CPU: every conv operand (x, dy, weights) is rounded to TF32
// (tf32_round, as the GPU kernels do while staging) and the products are summed in fp32 by the CPU
// twins; bias and dbias stay fp32 (as on the GPU). Every other op is the plain CPU backend's.
// Used to measure how far TF32 training drifts from fp32 training without a GPU (the calibration
// of kTf32Tolerance, tests/training_tolerance.h). Test code: allocates inside ops.
#pragma once
#include <memory>
#include <vector>

#include "kernels/conv2d_gpu_math.h"
#include "nn/backend.h"

namespace isonet::test {

class Tf32EmulatingCpuBackend final : public Backend {
 public:
  Tf32EmulatingCpuBackend() : Backend(Device::CPU), cpu_(make_backend(Device::CPU)) {}

  void zero(void* p, size_t bytes) override { cpu_->zero(p, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { cpu_->copy(dst, src, bytes); }
  void upload(void* dst, const void* src, size_t bytes) override { cpu_->upload(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { cpu_->download(dst, src, bytes); }
  void synchronize() override {}
  size_t psnr_loss_workspace_floats(const PsnrLossShape& s) const override {
    return cpu_->psnr_loss_workspace_floats(s);
  }

  void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                      bool fuse_relu) override {
    cpu_->conv2d_forward(s, rounded(a_, x, numel_x(s)), rounded(b_, weight, numel_w(s)), bias, y, fuse_relu);
  }
  void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx) override {
    cpu_->conv2d_backward_data(s, rounded(a_, dy, numel_y(s)), rounded(b_, weight, numel_w(s)), dx);
  }
  void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight,
                               float* dbias) override {
    cpu_->conv2d_backward_weights(s, rounded(a_, x, numel_x(s)), rounded(b_, dy, numel_y(s)), dweight, nullptr);
    if (!dbias) return;
    const size_t plane = size_t(s.h) * s.w;
    for (int o = 0; o < s.c_out; ++o) {  // dbias from the unrounded dy, in double
      double sum = 0;
      for (int n = 0; n < s.n; ++n)
        for (size_t i = 0; i < plane; ++i) sum += dy[(size_t(n) * s.c_out + o) * plane + i];
      dbias[o] = static_cast<float>(sum);
    }
  }

  void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) override {
    cpu_->maxpool2d_forward(s, x, y, argmax);
  }
  void maxpool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx) override {
    cpu_->maxpool2d_backward(s, dy, argmax, dx);
  }
  void upsample2d_forward(const Upsample2dShape& s, const float* x, float* y) override {
    cpu_->upsample2d_forward(s, x, y);
  }
  void upsample2d_backward(const Upsample2dShape& s, const float* dy, float* dx) override {
    cpu_->upsample2d_backward(s, dy, dx);
  }
  void concat_forward(const ConcatShape& s, const float* a, const float* b, float* y) override {
    cpu_->concat_forward(s, a, b, y);
  }
  void concat_backward(const ConcatShape& s, const float* dy, float* da, float* db) override {
    cpu_->concat_backward(s, dy, da, db);
  }
  void add_forward(const float* a, const float* b, float* y, size_t count) override { cpu_->add_forward(a, b, y, count); }
  void add_accumulate(const float* x, float* y, size_t count) override { cpu_->add_accumulate(x, y, count); }
  void relu_backward(const float* dy, const float* y, float* dx, size_t count) override {
    cpu_->relu_backward(dy, y, dx, count);
  }
  void dropout_forward(const DropoutParams& d, const float* x, float* y, size_t count) override {
    cpu_->dropout_forward(d, x, y, count);
  }
  void dropout_backward(const DropoutParams& d, const float* dy, float* dx, size_t count) override {
    cpu_->dropout_backward(d, dy, dx, count);
  }
  void psnr_loss_forward(const PsnrLossShape& s, const float* pred, const float* target, float* loss,
                         float* psnr) override {
    cpu_->psnr_loss_forward(s, pred, target, loss, psnr);
  }
  void psnr_loss_backward(const PsnrLossShape& s, const float* pred, const float* target, float* dpred) override {
    cpu_->psnr_loss_backward(s, pred, target, dpred);
  }
  void adam_update(const AdamParams& a, long step, float* param, const float* grad, float* m, float* v,
                   size_t count) override {
    cpu_->adam_update(a, step, param, grad, m, v, count);
  }
  void adam_update_scalars(const AdamParams& a, const AdamStepScalars* scalars, float* param, const float* grad,
                           float* m, float* v, size_t count) override {
    cpu_->adam_update_scalars(a, scalars, param, grad, m, v, count);
  }

 private:
  static size_t numel_x(const Conv2dShape& s) { return size_t(s.n) * s.c_in * s.h * s.w; }
  static size_t numel_y(const Conv2dShape& s) { return size_t(s.n) * s.c_out * s.h * s.w; }
  static size_t numel_w(const Conv2dShape& s) { return size_t(s.c_out) * s.c_in * s.k * s.k; }
  // buf = TF32-rounded copy of src [count].
  static const float* rounded(std::vector<float>& buf, const float* src, size_t count) {
    buf.resize(count);
    for (size_t i = 0; i < count; ++i) buf[i] = gpu::tf32conv::tf32_round(src[i]);
    return buf.data();
  }

  std::unique_ptr<Backend> cpu_;
  std::vector<float> a_, b_;
};

}  // namespace isonet::test
