// cuda_buffer.h: a move-free RAII owner of device memory for the imaging .cu files (cuFFT
// convolution, Richardson-Lucy), allocated through device_alloc so that the byte accounting
// and the out-of-memory message are the project's. Include only from .cu files.
#pragma once
#include <cstddef>

#include "kernels/device.h"

namespace isonet::detail {

class CudaBuffer {
 public:
  explicit CudaBuffer(size_t bytes) : bytes_(bytes), ptr_(device_alloc(Device::CUDA, bytes)) {}
  ~CudaBuffer() { device_free(Device::CUDA, ptr_, bytes_); }
  CudaBuffer(const CudaBuffer&) = delete;
  CudaBuffer& operator=(const CudaBuffer&) = delete;

  template <typename T>
  T* as() const {
    return static_cast<T*>(ptr_);
  }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_;
  void* ptr_;
};

}  // namespace isonet::detail
