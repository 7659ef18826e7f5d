// deconvolve.cu: Richardson-Lucy iterations on the GPU (see deconvolve.h). The data, weight,
// normalization, estimate and a work array stay on the device for all iterations; each one is
// a cuFFT convolution, an elementwise ratio, a cuFFT correlation and an elementwise update, with
// the same update rules as the CPU (deconvolve_backend.h). One download at the end.
#include "imaging/cuda_buffer.h"
#include "imaging/deconvolve_backend.h"
#include "imaging/fft_convolve.h"
#include "kernels/cuda_check.h"
#include "kernels/cuda_launch.h"

namespace isonet::detail {
namespace {

__global__ void rl_fill(float* __restrict__ x, float value, size_t n) {
  gpu::detail::grid_stride(n, [&](size_t i) { x[i] = value; });
}

// t <- w y / max(t, eps)   (t holds A x on entry)
__global__ void rl_ratio_kernel(const float* __restrict__ y, const float* __restrict__ w, float* __restrict__ t,
                                float eps, size_t n) {
  gpu::detail::grid_stride(n, [&](size_t i) { t[i] = rl_ratio(y[i], w[i], t[i], eps); });
}

// x <- x * t / norm (t holds A^T ratio)
__global__ void rl_update_kernel(float* __restrict__ x, const float* __restrict__ t, const float* __restrict__ norm,
                                 size_t n) {
  gpu::detail::grid_stride(n, [&](size_t i) { x[i] = rl_update(x[i], t[i], norm[i]); });
}

}  // namespace

std::vector<float> richardson_lucy_cuda(const RlProblem& p, const Volume& psf) {
  const char* op = "richardson_lucy (cuda)";
  const size_t n = p.y.size(), bytes = n * sizeof(float);
  FftConvolver conv(p.nz, p.ny, p.nx, psf, Device::CUDA);
  CudaBuffer y(bytes), w(bytes), norm(bytes), x(bytes), t(bytes);  // each float [nz, ny, nx]
  CUDA_CHECK(op, cudaMemcpy(y.as<float>(), p.y.data(), bytes, cudaMemcpyHostToDevice));
  CUDA_CHECK(op, cudaMemcpy(w.as<float>(), p.w.data(), bytes, cudaMemcpyHostToDevice));
  conv.correlate_device(w.as<float>(), norm.as<float>());
  const unsigned grid = gpu::detail::grid_for(n);
  rl_fill<<<grid, gpu::detail::kBlock>>>(x.as<float>(), p.x0, n);
  CUDA_CHECK_LAUNCH(op);
  for (int it = 0; it < p.iterations; ++it) {
    conv.convolve_device(x.as<float>(), t.as<float>());
    rl_ratio_kernel<<<grid, gpu::detail::kBlock>>>(y.as<float>(), w.as<float>(), t.as<float>(), p.eps, n);
    CUDA_CHECK_LAUNCH(op);
    conv.correlate_device(t.as<float>(), t.as<float>());
    rl_update_kernel<<<grid, gpu::detail::kBlock>>>(x.as<float>(), t.as<float>(), norm.as<float>(), n);
    CUDA_CHECK_LAUNCH(op);
  }
  std::vector<float> out(n);
  // Legacy default stream: this copy waits for every queued iteration and surfaces their faults.
  CUDA_CHECK(op, cudaMemcpy(out.data(), x.as<float>(), bytes, cudaMemcpyDeviceToHost));
  return out;
}

}  // namespace isonet::detail
