// fft_convolve.cu: the cuFFT backend of FftConvolver (see fft_convolve.h and
// fft_convolve_backend.h). Same layout as the FFTW backend: the image is embedded in a zeroed
// padded grid [pz, py, px] by one kernel, transformed R2C (rank 3, or a batch of 2D planes),
// multiplied by the cached OTF (or its conjugate for the adjoint) with the 1/N that cuFFT leaves
// out, transformed back C2R and cropped. All work is on the legacy default stream.
#include <cufft.h>

#include <algorithm>
#include <memory>
#include <string>

#include "imaging/cuda_buffer.h"
#include "imaging/fft_convolve_backend.h"
#include "kernels/cuda_launch.h"
#include "kernels/cuda_check.h"
#include "kernels/device.h"
#include "kernels/log.h"

namespace isonet::detail {
namespace {

// real [pz, py, px] <- image [nz, ny, nx] in the corner, zero elsewhere.
__global__ void embed_padded(const float* __restrict__ in, float* __restrict__ real, int nz, int ny, int nx, int py,
                             int px, size_t real_count) {
  gpu::detail::grid_stride(real_count, [&](size_t i) {
    const int x = int(i % px);
    const size_t zy = i / px;
    const int y = int(zy % py);
    const int z = int(zy / py);
    real[i] = (z < nz && y < ny && x < nx) ? in[(size_t(z) * ny + y) * nx + x] : 0.f;
  });
}

// spectrum[i] *= otf[i mod n_otf] (conjugated for the adjoint) * scale.
__global__ void multiply_otf(cufftComplex* __restrict__ spec, const cufftComplex* __restrict__ otf, size_t count,
                             size_t n_otf, float scale, bool adjoint) {
  gpu::detail::grid_stride(count, [&](size_t i) {
    const cufftComplex a = spec[i];
    cufftComplex h = otf[i % n_otf];
    if (adjoint) h.y = -h.y;
    spec[i] = make_cuFloatComplex((a.x * h.x - a.y * h.y) * scale, (a.x * h.y + a.y * h.x) * scale);
  });
}

// out [nz, ny, nx] <- the corner of real [pz, py, px].
__global__ void crop_padded(const float* __restrict__ real, float* __restrict__ out, int ny, int nx, int py, int px,
                            size_t image_count) {
  gpu::detail::grid_stride(image_count, [&](size_t i) {
    const int x = int(i % nx);
    const size_t zy = i / nx;
    const int y = int(zy % ny);
    const int z = int(zy / ny);
    out[i] = real[(size_t(z) * py + y) * px + x];
  });
}

// A cuFFT plan without its own workspace: the forward and inverse plans of a convolver share
// one work area (they never run concurrently: same stream), halving cuFFT's scratch memory.
class CufftPlan {
 public:
  CufftPlan() = default;
  ~CufftPlan() {
    if (created_) {
      cufftResult r = cufftDestroy(handle_);
      if (r != CUFFT_SUCCESS) log_info("cufftDestroy failed with status " + std::to_string(int(r)));
    }
  }
  CufftPlan(const CufftPlan&) = delete;
  CufftPlan& operator=(const CufftPlan&) = delete;
  // `batch` rank-D transforms of n[0..rank) in contiguous default layouts (dist_real real /
  // dist_complex complex values apart). Returns the work area size it needs in bytes.
  size_t create(int rank, int* n, int batch, cufftType type, int dist_real, int dist_complex) {
    const char* op = "FftConvolver: cuFFT plan";
    CUFFT_CHECK(op, cufftCreate(&handle_));
    created_ = true;
    CUFFT_CHECK(op, cufftSetAutoAllocation(handle_, 0));
    const bool r2c = type == CUFFT_R2C;
    size_t work = 0;
    CUFFT_CHECK(op, cufftMakePlanMany(handle_, rank, n, nullptr, 1, r2c ? dist_real : dist_complex, nullptr, 1,
                                      r2c ? dist_complex : dist_real, type, batch, &work));
    return work;
  }
  void set_work_area(void* area) { CUFFT_CHECK("FftConvolver: cuFFT work area", cufftSetWorkArea(handle_, area)); }
  cufftHandle get() const { return handle_; }

 private:
  cufftHandle handle_ = 0;
  bool created_ = false;
};

class CufftBackend final : public FftBackend {
 public:
  CufftBackend(const FftGeometry& g, const std::vector<float>& wrapped)
      : g_(g),
        real_(g.real_count() * sizeof(float)),
        cplx_(g.complex_count() * sizeof(cufftComplex)),
        otf_(g.otf_count() * sizeof(cufftComplex)) {
    int dims3[3] = {g.pz, g.py, g.px};
    int* n = g.rank == 3 ? dims3 : dims3 + 1;
    const int dist_r = g.rank == 3 ? int(g.real_count()) : g.py * g.px;
    const int dist_c = g.rank == 3 ? int(g.complex_count()) : g.py * (g.px / 2 + 1);
    const size_t work = std::max(forward_.create(g.rank, n, g.batch, CUFFT_R2C, dist_r, dist_c),
                                 inverse_.create(g.rank, n, g.batch, CUFFT_C2R, dist_r, dist_c));
    if (work > 0) {
      work_ = std::make_unique<CudaBuffer>(work);
      forward_.set_work_area(work_->as<void>());
      inverse_.set_work_area(work_->as<void>());
    }
    // The OTF: the forward plan on the wrapped kernel in the first transform's slot (in rank 2
    // the other planes' transforms are independent and ignored), then its spectrum copied out.
    const char* op = "FftConvolver: kernel transform";
    CUDA_CHECK(op, cudaMemset(real_.as<float>(), 0, real_.bytes()));
    CUDA_CHECK(op, cudaMemcpy(real_.as<float>(), wrapped.data(), wrapped.size() * sizeof(float), cudaMemcpyHostToDevice));
    CUFFT_CHECK(op, cufftExecR2C(forward_.get(), real_.as<cufftReal>(), cplx_.as<cufftComplex>()));
    CUDA_CHECK(op, cudaMemcpy(otf_.as<cufftComplex>(), cplx_.as<cufftComplex>(), otf_.bytes(), cudaMemcpyDeviceToDevice));
    CUDA_CHECK(op, cudaDeviceSynchronize());
  }

  void run(const float* in, float* out, bool adjoint, bool device_pointers) override {
    const FftGeometry& g = g_;
    const size_t image_bytes = g.image_count() * sizeof(float);
    const float* d_in = in;
    float* d_out = out;
    if (!device_pointers) {
      if (!io_) io_ = std::make_unique<CudaBuffer>(image_bytes);  // staging, made on first host call
      CUDA_CHECK("FftConvolver: upload", cudaMemcpy(io_->as<float>(), in, image_bytes, cudaMemcpyHostToDevice));
      d_in = d_out = io_->as<float>();
    }
    using gpu::detail::grid_for;
    using gpu::detail::kBlock;
    embed_padded<<<grid_for(g.real_count()), kBlock>>>(d_in, real_.as<float>(), g.nz, g.ny, g.nx, g.py, g.px,
                                                       g.real_count());
    CUDA_CHECK_LAUNCH("FftConvolver: embedding the image");
    CUFFT_CHECK("FftConvolver: forward transform",
                cufftExecR2C(forward_.get(), real_.as<cufftReal>(), cplx_.as<cufftComplex>()));
    multiply_otf<<<grid_for(g.complex_count()), kBlock>>>(cplx_.as<cufftComplex>(), otf_.as<cufftComplex>(),
                                                          g.complex_count(), g.otf_count(),
                                                          float(1.0 / g.transform_size()), adjoint);
    CUDA_CHECK_LAUNCH("FftConvolver: multiplying by the OTF");
    CUFFT_CHECK("FftConvolver: inverse transform",
                cufftExecC2R(inverse_.get(), cplx_.as<cufftComplex>(), real_.as<cufftReal>()));
    crop_padded<<<grid_for(g.image_count()), kBlock>>>(real_.as<float>(), d_out, g.ny, g.nx, g.py, g.px,
                                                       g.image_count());
    CUDA_CHECK_LAUNCH("FftConvolver: cropping the result");
    if (!device_pointers)
      CUDA_CHECK("FftConvolver: download", cudaMemcpy(out, io_->as<float>(), image_bytes, cudaMemcpyDeviceToHost));
  }

 private:
  FftGeometry g_;
  CudaBuffer real_;  // float [pz, py, px]
  CudaBuffer cplx_;  // cufftComplex [pz, py, px/2+1]
  CudaBuffer otf_;   // cufftComplex [otf_count]
  std::unique_ptr<CudaBuffer> io_;    // float [nz, ny, nx]: staging for the host-pointer calls
  std::unique_ptr<CudaBuffer> work_;  // cuFFT work area shared by both plans
  CufftPlan forward_, inverse_;       // declared last: destroyed first
};

}  // namespace

std::unique_ptr<FftBackend> make_cufft_backend(const FftGeometry& g, const std::vector<float>& wrapped) {
  return std::make_unique<CufftBackend>(g, wrapped);
}

}  // namespace isonet::detail
