// tensor.h: float32 NCHW tensors with owning RAII storage on the CPU or a CUDA device.
// Copies between devices are explicit (to(), copy_from()); shapes are checked with errors that
// name both shapes. TensorView is the non-owning form used for slices of a flat allocation.
#pragma once
#include <array>
#include <cstddef>
#include <string>
#include <vector>

#include "kernels/device.h"

namespace isonet {

struct Shape {
  int n = 0, c = 0, h = 0, w = 0;
  size_t numel() const { return size_t(n) * size_t(c) * size_t(h) * size_t(w); }
  size_t plane() const { return size_t(h) * size_t(w); }
  bool operator==(const Shape& o) const { return n == o.n && c == o.c && h == o.h && w == o.w; }
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[n,c,h,w]"
};

// Non-owning view: pointer + shape + device. Cheap to copy.
struct TensorView {
  float* data = nullptr;
  Shape shape;
  Device device = Device::CPU;
  size_t numel() const { return shape.numel(); }
};

class Tensor {
 public:
  Tensor() = default;
  // Uninitialized storage of the given shape on `device`.
  Tensor(Shape shape, Device device = Device::CPU);
  static Tensor zeros(Shape shape, Device device = Device::CPU);
  static Tensor from_vector(Shape shape, const std::vector<float>& values, Device device = Device::CPU);

  ~Tensor();
  Tensor(Tensor&& o) noexcept;
  Tensor& operator=(Tensor&& o) noexcept;
  Tensor(const Tensor&) = delete;             // copies are explicit:
  Tensor& operator=(const Tensor&) = delete;  // use clone(), to() or copy_from()

  float* data() { return data_; }
  const float* data() const { return data_; }
  const Shape& shape() const { return shape_; }
  Device device() const { return device_; }
  size_t numel() const { return shape_.numel(); }
  size_t bytes() const { return numel() * sizeof(float); }
  bool empty() const { return numel() == 0; }
  TensorView view() { return {data_, shape_, device_}; }

  Tensor clone() const;                // same device
  Tensor to(Device device) const;      // copy onto `device`
  void copy_from(const Tensor& src);   // shapes must match; any devices
  void fill_zero();
  std::vector<float> to_vector() const;  // host copy of the values

  // Throws isonet::Error "<what>: expected shape X, got Y" when the shapes differ.
  void require_shape(const Shape& expected, const char* what) const;

 private:
  void release() noexcept;
  float* data_ = nullptr;
  Shape shape_{};
  Device device_ = Device::CPU;
};

}  // namespace isonet
