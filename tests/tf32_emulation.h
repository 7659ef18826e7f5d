// tf32_emulation.h: a Backend that computes what the CUDA TF32 tensor-core convolutions compute
// (kernels/conv2d_tf32.cu), on the CPU: every conv operand (x, dy, weights) is rounded to TF32
// (tf32_round, as the GPU kernels do while staging) and the products are summed in fp32 by the CPU
// twins; bias and dbias stay fp32 (as on the GPU). Every other op is the plain CPU backend's
// (ForwardingBackend).
// Used to measure how far TF32 training drifts from fp32 training without a GPU (the calibration
// of kTf32Tolerance, tests/training_tolerance.h). Test code: allocates inside ops.
#pragma once
#include <memory>
#include <vector>

#include "forwarding_backend.h"
#include "kernels/conv2d_gpu_math.h"

namespace isonet::test {

class Tf32EmulatingCpuBackend final : public ForwardingBackend {
 public:
  void conv2d_forward(const Conv2dShape& s, const float* x, const float* weight, const float* bias, float* y,
                      bool fuse_relu) override {
    inner_->conv2d_forward(s, rounded(a_, x, numel_x(s)), rounded(b_, weight, numel_w(s)), bias, y, fuse_relu);
  }
  void conv2d_backward_data(const Conv2dShape& s, const float* dy, const float* weight, float* dx) override {
    inner_->conv2d_backward_data(s, rounded(a_, dy, numel_y(s)), rounded(b_, weight, numel_w(s)), dx);
  }
  void conv2d_backward_weights(const Conv2dShape& s, const float* x, const float* dy, float* dweight,
                               float* dbias) override {
    inner_->conv2d_backward_weights(s, rounded(a_, x, numel_x(s)), rounded(b_, dy, numel_y(s)), dweight, nullptr);
    if (!dbias) return;
    const size_t plane = size_t(s.h) * s.w;
    for (int o = 0; o < s.c_out; ++o) {  // dbias from the unrounded dy, in double
      double sum = 0;
      for (int n = 0; n < s.n; ++n)
        for (size_t i = 0; i < plane; ++i) sum += dy[(size_t(n) * s.c_out + o) * plane + i];
      dbias[o] = static_cast<float>(sum);
    }
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

  std::vector<float> a_, b_;
};

}  // namespace isonet::test
