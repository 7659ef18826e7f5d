// tensor.cpp: implementation of tensor.h on top of the raw device memory of kernels/device.h.
#include "nn/tensor.h"

#include <sstream>
#include <utility>

#include "kernels/error.h"

namespace isonet {

std::string Shape::str() const {
  std::ostringstream os;
  os << "[" << n << "," << c << "," << h << "," << w << "]";
  return os.str();
}

Tensor::Tensor(Shape shape, Device device) : shape_(shape), device_(device) {
  ISONET_CHECK(shape.n >= 0 && shape.c >= 0 && shape.h >= 0 && shape.w >= 0, "tensor: negative size in shape ",
               shape.str());
  data_ = static_cast<float*>(device_alloc(device, bytes()));
}

Tensor Tensor::zeros(Shape shape, Device device) {
  Tensor t(shape, device);
  t.fill_zero();
  return t;
}

Tensor Tensor::from_vector(Shape shape, const std::vector<float>& values, Device device) {
  ISONET_CHECK(values.size() == shape.numel(), "tensor: ", values.size(), " values do not fill shape ",
               shape.str(), " (", shape.numel(), " elements)");
  Tensor t(shape, device);
  device_copy(t.data_, device, values.data(), Device::CPU, t.bytes());
  return t;
}

Tensor::~Tensor() { release(); }

void Tensor::release() noexcept {
  device_free(device_, data_, bytes());
  data_ = nullptr;
}

Tensor::Tensor(Tensor&& o) noexcept
    : data_(std::exchange(o.data_, nullptr)), shape_(std::exchange(o.shape_, Shape{})), device_(o.device_) {}

Tensor& Tensor::operator=(Tensor&& o) noexcept {
  if (this != &o) {
    release();
    data_ = std::exchange(o.data_, nullptr);
    shape_ = std::exchange(o.shape_, Shape{});
    device_ = o.device_;
  }
  return *this;
}

Tensor Tensor::clone() const { return to(device_); }

Tensor Tensor::to(Device device) const {
  Tensor t(shape_, device);
  device_copy(t.data_, device, data_, device_, bytes());
  return t;
}

void Tensor::copy_from(const Tensor& src) {
  src.require_shape(shape_, "tensor copy");
  device_copy(data_, device_, src.data_, src.device_, bytes());
}

void Tensor::fill_zero() { device_memset(device_, data_, 0, bytes()); }

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(numel());
  device_copy(v.data(), Device::CPU, data_, device_, bytes());
  return v;
}

void Tensor::require_shape(const Shape& expected, const char* what) const {
  ISONET_CHECK(shape_ == expected, what, ": expected shape ", expected.str(), ", got ", shape_.str());
}

}  // namespace isonet
