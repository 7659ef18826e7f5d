// forwarding_backend.h: a Backend that passes every call to another one (by default the CPU
// backend), for tests that change one behaviour and keep the rest: override what differs.
// Used by tf32_emulation.h (the convolutions with the GPU's TF32 rounding) and by
// test_nn_record_steps.cpp (a backend whose recording fails).
#pragma once
#include <functional>
#include <memory>
#include <utility>

#include "nn/backend.h"

namespace isonet::test {

class ForwardingBackend : public Backend {
 public:
  explicit ForwardingBackend(std::unique_ptr<Backend> inner = make_backend(Device::CPU))
      : Backend(inner->device()), inner_(std::move(inner)) {}

  cudaStream_t stream() const override { return inner_->stream(); }
  void zero(void* p, size_t bytes) override { inner_->zero(p, bytes); }
  void copy(void* dst, const void* src, size_t bytes) override { inner_->copy(dst, src, bytes); }
  void upload(void* dst, const void* src, size_t bytes) override { inner_->upload(dst, src, bytes); }
  void download(void* dst, const void* src, size_t bytes) override { inner_->download(dst, src, bytes); }
  void synchronize() override { inner_->synchronize(); }
  size_t psnr_loss_workspace_floats(const PsnrLossShape& s) const override {
    return inner_->psnr_loss_workspace_floats(s);
  }

  void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                      bool fuse_relu) override {
    inner_->conv2d_forward(s, x, weight, bias, y, fuse_relu);
  }
  void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx) override {
    inner_->conv2d_backward_data(s, dy, weight, dx);
  }
  void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight,
                               float* dbias) override {
    inner_->conv2d_backward_weights(s, x, dy, dweight, dbias);
  }
  void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) override {
    inner_->maxpool2d_forward(s, x, y, argmax);
  }
  void maxpool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx) override {
    inner_->maxpool2d_backward(s, dy, argmax, dx);
  }
  void upsample2d_forward(const Upsample2dShape& s, const float* x, float* y) override {
    inner_->upsample2d_forward(s, x, y);
  }
  void upsample2d_backward(const Upsample2dShape& s, const float* dy, float* dx) override {
    inner_->upsample2d_backward(s, dy, dx);
  }
  void concat_forward(const ConcatShape& s, const float* a, const float* b, float* y) override {
    inner_->concat_forward(s, a, b, y);
  }
  void concat_backward(const ConcatShape& s, const float* dy, float* da, float* db) override {
    inner_->concat_backward(s, dy, da, db);
  }
  void add_forward(const float* a, const float* b, float* y, size_t count) override { inner_->add_forward(a, b, y, count); }
  void add_accumulate(const float* x, float* y, size_t count) override { inner_->add_accumulate(x, y, count); }
  void relu_backward(const float* dy, const float* y, float* dx, size_t count) override {
    inner_->relu_backward(dy, y, dx, count);
  }
  void dropout_forward(const DropoutParams& d, const float* x, float* y, size_t count) override {
    inner_->dropout_forward(d, x, y, count);
  }
  void dropout_backward(const DropoutParams& d, const float* dy, float* dx, size_t count) override {
    inner_->dropout_backward(d, dy, dx, count);
  }
  void psnr_loss_forward(const PsnrLossShape& s, const float* pred, const float* target, float* loss,
                         float* psnr) override {
    inner_->psnr_loss_forward(s, pred, target, loss, psnr);
  }
  void psnr_loss_backward(const PsnrLossShape& s, const float* pred, const float* target, float* dpred) override {
    inner_->psnr_loss_backward(s, pred, target, dpred);
  }
  void adam_update(const AdamParams& a, long step, float* param, const float* grad, float* m, float* v,
                   size_t count) override {
    inner_->adam_update(a, step, param, grad, m, v, count);
  }
  void adam_update_scalars(const AdamParams& a, const AdamStepScalars* scalars, float* param, const float* grad,
                           float* m, float* v, size_t count) override {
    inner_->adam_update_scalars(a, scalars, param, grad, m, v, count);
  }
  std::unique_ptr<RecordedWork> record(std::function<void()> work) override { return inner_->record(std::move(work)); }

 protected:
  std::unique_ptr<Backend> inner_;
};

}  // namespace isonet::test
