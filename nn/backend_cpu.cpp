// backend_cpu.cpp: the Backend on the host. Every op forwards to the plain CPU twin in
// isonet::cpu:: (kernels/*.cpp); memory operations are memcpy/memset, so nothing is asynchronous.
#include <cstring>

#include "kernels/add.h"
#include "kernels/relu.h"
#include "nn/backend.h"

namespace isonet {
namespace {

class CpuBackend final : public Backend {
 public:
  CpuBackend() : Backend(Device::CPU) {}

  void zero(void* p, size_t bytes) override {
    if (bytes) std::memset(p, 0, bytes);
  }
  void copy(void* dst, const void* src, size_t bytes) override {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  void upload(void* dst, const void* host_src, size_t bytes) override { copy(dst, host_src, bytes); }
  void download(void* host_dst, const void* src, size_t bytes) override { copy(host_dst, src, bytes); }
  void synchronize() override {}

  size_t psnr_loss_workspace_floats(const PsnrLossShape&) const override { return 0; }

  void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                      bool fuse_relu) override {
    cpu::conv2d_forward(s, x, weight, bias, y, fuse_relu, workspace(conv2d_workspace_floats(s)));
  }
  void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx) override {
    cpu::conv2d_backward_data(s, dy, weight, dx, workspace(conv2d_workspace_floats(s)));
  }
  void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight,
                               float* dbias) override {
    cpu::conv2d_backward_weights(s, x, dy, dweight, dbias, workspace(conv2d_workspace_floats(s)));
  }
  void maxpool2d_forward(const Pool2dShape& s, const float* x, float* y, int32_t* argmax) override {
    cpu::maxpool2d_forward(s, x, y, argmax);
  }
  void maxpool2d_backward(const Pool2dShape& s, const float* dy, const int32_t* argmax, float* dx) override {
    cpu::maxpool2d_backward(s, dy, argmax, dx);
  }
  void upsample2d_forward(const Upsample2dShape& s, const float* x, float* y) override {
    cpu::upsample2d_forward(s, x, y);
  }
  void upsample2d_backward(const Upsample2dShape& s, const float* dy, float* dx) override {
    cpu::upsample2d_backward(s, dy, dx);
  }
  void concat_forward(const ConcatShape& s, const float* a, const float* b, float* y) override {
    cpu::concat_forward(s, a, b, y);
  }
  void concat_backward(const ConcatShape& s, const float* dy, float* da, float* db) override {
    cpu::concat_backward(s, dy, da, db);
  }
  void add_forward(const float* a, const float* b, float* y, size_t count) override {
    cpu::add_forward(a, b, y, count);
  }
  void add_accumulate(const float* x, float* y, size_t count) override { cpu::add_accumulate(x, y, count); }
  void relu_backward(const float* dy, const float* y, float* dx, size_t count) override {
    cpu::relu_backward(dy, y, dx, count);
  }
  void dropout_forward(const DropoutParams& d, const float* x, float* y, size_t count) override {
    cpu::dropout_forward(d, x, y, count);
  }
  void dropout_backward(const DropoutParams& d, const float* dy, float* dx, size_t count) override {
    cpu::dropout_backward(d, dy, dx, count);
  }
  void psnr_loss_forward(const PsnrLossShape& s, const float* pred, const float* target, float* loss,
                         float* psnr) override {
    cpu::psnr_loss_forward(s, pred, target, loss, psnr);
  }
  void psnr_loss_backward(const PsnrLossShape& s, const float* pred, const float* target, float* dpred) override {
    cpu::psnr_loss_backward(s, pred, target, dpred);
  }
  void adam_update(const AdamParams& a, long step, float* param, const float* grad, float* m, float* v,
                   size_t count) override {
    cpu::adam_update(a, step, param, grad, m, v, count);
  }
  void adam_update_scalars(const AdamParams& a, const AdamStepScalars* scalars, float* param, const float* grad,
                           float* m, float* v, size_t count) override {
    cpu::adam_update_scalars(a, scalars, param, grad, m, v, count);
  }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace isonet
