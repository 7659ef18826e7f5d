// cuda_check.h: error checking for CUDA runtime, cuFFT and cuBLAS calls (CUDA builds only).
// Every call is wrapped: the thrown isonet::Error names the op, the call, file and line.
// Include only from .cu files or from .cpp files guarded by ISONET_HAS_CUDA.
#pragma once
#include <cuda_runtime.h>

#include "kernels/error.h"

namespace isonet::detail {
[[noreturn]] void throw_cuda_error(cudaError_t err, const char* op, const char* expr, const char* file, int line);
[[noreturn]] void throw_library_error(const char* library, int status, const char* op, const char* expr,
                                      const char* file, int line);
}  // namespace isonet::detail

// CUDA_CHECK(op, call): op is a short name of the user-level operation ("conv2d forward").
#define CUDA_CHECK(op, call)                                                                 \
  do {                                                                                       \
    cudaError_t isonet_err_ = (call);                                                        \
    if (isonet_err_ != cudaSuccess)                                                          \
      ::isonet::detail::throw_cuda_error(isonet_err_, op, #call, __FILE__, __LINE__);        \
  } while (0)

// After a kernel launch: catches bad launch configurations immediately (asynchronous faults
// surface at the next synchronizing call, which is checked too).
#define CUDA_CHECK_LAUNCH(op) CUDA_CHECK(op, cudaGetLastError())

#define CUFFT_CHECK(op, call)                                                                           \
  do {                                                                                                  \
    int isonet_st_ = static_cast<int>(call);                                                            \
    if (isonet_st_ != 0) ::isonet::detail::throw_library_error("cuFFT", isonet_st_, op, #call, __FILE__, __LINE__); \
  } while (0)

#define CUBLAS_CHECK(op, call)                                                                           \
  do {                                                                                                   \
    int isonet_st_ = static_cast<int>(call);                                                             \
    if (isonet_st_ != 0) ::isonet::detail::throw_library_error("cuBLAS", isonet_st_, op, #call, __FILE__, __LINE__); \
  } while (0)

#define CUDNN_CHECK(op, call)                                                                           \
  do {                                                                                                  \
    int isonet_st_ = static_cast<int>(call);                                                            \
    if (isonet_st_ != 0) ::isonet::detail::throw_library_error("cuDNN", isonet_st_, op, #call, __FILE__, __LINE__); \
  } while (0)
