// fft_convolve.cpp: FftConvolver (see fft_convolve.h): the transform geometry, the kernel
// wrapping, the FFTW single-precision backend and the public entry points. The cuFFT backend
// lives in fft_convolve.cu behind the same FftBackend interface.
#include "imaging/fft_convolve.h"

#include <fftw3.h>
#include <omp.h>

#include <algorithm>
#include <complex>
#include <cstring>
#include <mutex>
#include <utility>

#include "imaging/fft_convolve_backend.h"
#include "kernels/error.h"
#include "kernels/fft_util.h"

namespace isonet {

namespace detail {

FftGeometry make_fft_geometry(int nz, int ny, int nx, const Volume& kernel) {
  ISONET_CHECK(nz >= 1 && ny >= 1 && nx >= 1, "FftConvolver: image size must be positive, got (", nz, ",", ny,
               ",", nx, ")");
  ISONET_CHECK(kernel.nz >= 1 && kernel.ny >= 1 && kernel.nx >= 1, "FftConvolver: empty kernel ",
               kernel.shape_str());
  ISONET_CHECK(kernel.data.size() == size_t(kernel.nz) * kernel.ny * kernel.nx,
               "FftConvolver: kernel data size ", kernel.data.size(), " does not match its shape ",
               kernel.shape_str());
  FftGeometry g;
  g.nz = nz, g.ny = ny, g.nx = nx;
  g.ky = kernel.ny, g.kx = kernel.nx;
  g.py = next_fast_fft_size(ny + kernel.ny - 1);
  g.px = next_fast_fft_size(nx + kernel.nx - 1);
  if (nz == 1 || kernel.nz == 1) {
    // 2D image (only the kernel's central plane reaches it) or batched planes: no z transform.
    g.rank = 2, g.kz = 1, g.pz = nz, g.batch = nz;
  } else {
    g.rank = 3, g.kz = kernel.nz, g.pz = next_fast_fft_size(nz + kernel.nz - 1), g.batch = 1;
  }
  // The transform libraries index with int; refuse sizes whose element counts overflow it.
  ISONET_CHECK(g.complex_count() * 2 < size_t(1) << 31 && g.real_count() < size_t(1) << 31,
               "FftConvolver: padded grid (", g.pz, ",", g.py, ",", g.px,
               ") is too large for one transform; convolve in tiles");
  return g;
}

std::vector<float> wrap_kernel(const FftGeometry& g, const Volume& kernel) {
  require_finite(kernel, "FftConvolver kernel");
  const int tz = g.rank == 3 ? g.pz : 1;
  const int z_first = g.rank == 3 ? 0 : kernel.nz / 2;  // rank 2: the central plane only
  std::vector<float> out(size_t(tz) * g.py * g.px, 0.f);
  for (int k = 0; k < g.kz; ++k) {
    const int wz = g.rank == 3 ? ((k - g.kz / 2) % tz + tz) % tz : 0;
    for (int j = 0; j < g.ky; ++j) {
      const int wy = ((j - g.ky / 2) % g.py + g.py) % g.py;
      for (int i = 0; i < g.kx; ++i) {
        const int wx = ((i - g.kx / 2) % g.px + g.px) % g.px;
        out[(size_t(wz) * g.py + wy) * g.px + wx] = kernel.at(z_first + k, j, i);
      }
    }
  }
  return out;
}

namespace {

struct FftwFree {
  void operator()(void* p) const { fftwf_free(p); }
};
template <typename T>
using FftwBuffer = std::unique_ptr<T, FftwFree>;

template <typename T>
FftwBuffer<T> fftw_alloc(size_t count, const char* what) {
  T* p = static_cast<T*>(fftwf_malloc(count * sizeof(T)));
  if (!p) fail("FftConvolver: out of memory allocating ", count * sizeof(T), " bytes for ", what);
  return FftwBuffer<T>(p);
}

// The work is done in units: rank 3 has one unit (the whole padded volume), rank 2 one unit per
// plane. Rank-2 planes are independent, so they run in parallel (OpenMP), each thread in its
// own unit buffer: memory stays at (threads x one padded plane) however many planes there are.
// Unit buffers are 64-byte aligned, so one plan (made on unit 0) serves every unit through
// FFTW's new-array execute functions, which are thread-safe.
class FftwBackend final : public FftBackend {
 public:
  FftwBackend(const FftGeometry& g, const std::vector<float>& wrapped) : g_(g) {
    const int tz = g.rank == 3 ? g.pz : 1;  // planes per unit
    unit_real_ = round_up(size_t(tz) * g.py * g.px, 16);
    unit_cplx_ = round_up(size_t(tz) * g.py * (g.px / 2 + 1), 8);
    n_otf_ = size_t(tz) * g.py * (g.px / 2 + 1);
    n_units_ = g.rank == 3 ? 1 : std::max(1, std::min(g.batch, omp_get_max_threads()));
    real_ = fftw_alloc<float>(unit_real_ * n_units_, "the padded image");
    cplx_ = fftw_alloc<fftwf_complex>(unit_cplx_ * n_units_, "its spectrum");
    const int dims3[3] = {g.pz, g.py, g.px};
    const int* n = g.rank == 3 ? dims3 : dims3 + 1;
    {
      std::lock_guard<std::mutex> lock(fftw_planner_mutex());
      forward_ = fftwf_plan_dft_r2c(g.rank, n, real_.get(), cplx_.get(), FFTW_ESTIMATE);
      inverse_ = fftwf_plan_dft_c2r(g.rank, n, cplx_.get(), real_.get(), FFTW_ESTIMATE);
    }
    if (!forward_ || !inverse_) {
      destroy_plans();
      fail("FftConvolver: FFTW could not plan a ", g.rank, "D transform of (", tz, ",", g.py, ",", g.px, ")");
    }
    // The OTF: the forward transform of the wrapped kernel ([tz, py, px], like one unit).
    std::memcpy(real_.get(), wrapped.data(), wrapped.size() * sizeof(float));
    fftwf_execute_dft_r2c(forward_, real_.get(), cplx_.get());
    otf_.resize(n_otf_);
    for (size_t i = 0; i < n_otf_; ++i) otf_[i] = {cplx_.get()[i][0], cplx_.get()[i][1]};
  }

  ~FftwBackend() override { destroy_plans(); }

  void run(const float* in, float* out, bool adjoint, bool device_pointers) override {
    ISONET_CHECK(!device_pointers, "FftConvolver: the *_device calls need a CUDA convolver (this one runs on the CPU)");
    if (g_.rank == 3) {
      process(0, 0, g_.nz, in, out, adjoint);
      return;
    }
#pragma omp parallel for schedule(dynamic) num_threads(n_units_) if (n_units_ > 1)
    for (int z = 0; z < g_.nz; ++z) process(omp_get_thread_num(), z, 1, in, out, adjoint);
  }

 private:
  static size_t round_up(size_t n, size_t m) { return (n + m - 1) / m * m; }

  // Convolves image planes [z0, z0 + planes) in unit buffer `unit`: embed in the zeroed padded
  // grid, forward transform, multiply by the OTF (conjugate for the adjoint) and 1/N, inverse,
  // crop. Reads its input planes before writing its output planes, so out may alias in.
  void process(int unit, int z0, int planes, const float* in, float* out, bool adjoint) {
    const FftGeometry& g = g_;
    float* real = real_.get() + size_t(unit) * unit_real_;
    fftwf_complex* spec = cplx_.get() + size_t(unit) * unit_cplx_;
    std::memset(real, 0, unit_real_ * sizeof(float));
    for (int z = 0; z < planes; ++z)
      for (int y = 0; y < g.ny; ++y)
        std::memcpy(real + (size_t(z) * g.py + y) * g.px, in + (size_t(z0 + z) * g.ny + y) * g.nx, g.nx * sizeof(float));
    fftwf_execute_dft_r2c(forward_, real, spec);
    auto* c = reinterpret_cast<std::complex<float>*>(spec);
    const float scale = float(1.0 / g.transform_size());
    const long long n = (long long)n_otf_;
#pragma omp parallel for schedule(static) if (g.rank == 3 && n > (1 << 16))
    for (long long i = 0; i < n; ++i) c[i] *= (adjoint ? std::conj(otf_[i]) : otf_[i]) * scale;
    fftwf_execute_dft_c2r(inverse_, spec, real);
    for (int z = 0; z < planes; ++z)
      for (int y = 0; y < g.ny; ++y)
        std::memcpy(out + (size_t(z0 + z) * g.ny + y) * g.nx, real + (size_t(z) * g.py + y) * g.px, g.nx * sizeof(float));
  }

  void destroy_plans() {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    if (forward_) fftwf_destroy_plan(forward_);
    if (inverse_) fftwf_destroy_plan(inverse_);
    forward_ = inverse_ = nullptr;
  }

  FftGeometry g_;
  size_t unit_real_ = 0, unit_cplx_ = 0;  // per-unit buffer strides (64-byte multiples)
  size_t n_otf_ = 0;                      // complex values per unit transform
  int n_units_ = 1;
  FftwBuffer<float> real_;                // [n_units, unit_real_]: [tz, py, px] each
  FftwBuffer<fftwf_complex> cplx_;        // [n_units, unit_cplx_]: [tz, py, px/2+1] each
  std::vector<std::complex<float>> otf_;  // [tz, py, px/2+1]
  fftwf_plan forward_ = nullptr, inverse_ = nullptr;
};

}  // namespace

std::unique_ptr<FftBackend> make_fftw_backend(const FftGeometry& g, const std::vector<float>& wrapped) {
  return std::make_unique<FftwBackend>(g, wrapped);
}

}  // namespace detail

struct FftConvolver::Impl {
  detail::FftGeometry geometry;
  Device device;
  std::unique_ptr<detail::FftBackend> backend;
};

FftConvolver::FftConvolver(int image_nz, int image_ny, int image_nx, const Volume& kernel, Device device) {
  auto impl = std::make_unique<Impl>();
  impl->geometry = detail::make_fft_geometry(image_nz, image_ny, image_nx, kernel);
  impl->device = device;
  const std::vector<float> wrapped = detail::wrap_kernel(impl->geometry, kernel);
  if (device == Device::CPU) {
    impl->backend = detail::make_fftw_backend(impl->geometry, wrapped);
  } else {
#if ISONET_HAS_CUDA
    ISONET_CHECK(cuda_available(), "FftConvolver: CUDA requested but no usable CUDA device was found");
    impl->backend = detail::make_cufft_backend(impl->geometry, wrapped);
#else
    fail("FftConvolver: CUDA requested but this isonet was built without the CUDA backend");
#endif
  }
  impl_ = std::move(impl);
}

FftConvolver::~FftConvolver() = default;
FftConvolver::FftConvolver(FftConvolver&&) noexcept = default;
FftConvolver& FftConvolver::operator=(FftConvolver&&) noexcept = default;

FftConvolver::Impl& FftConvolver::live() const {
  ISONET_CHECK(impl_ != nullptr, "FftConvolver: use of a moved-from convolver");
  return *impl_;
}

static void check_pointers(const float* in, float* out) {
  ISONET_CHECK(in != nullptr && out != nullptr, "FftConvolver: null image pointer");
}

void FftConvolver::convolve(const float* in, float* out) {
  check_pointers(in, out);
  live().backend->run(in, out, false, false);
}
void FftConvolver::correlate(const float* in, float* out) {
  check_pointers(in, out);
  live().backend->run(in, out, true, false);
}
void FftConvolver::convolve_device(const float* in, float* out) {
  check_pointers(in, out);
  live().backend->run(in, out, false, true);
}
void FftConvolver::correlate_device(const float* in, float* out) {
  check_pointers(in, out);
  live().backend->run(in, out, true, true);
}
Device FftConvolver::device() const { return live().device; }
bool FftConvolver::batched_planes() const { return live().geometry.rank == 2 && live().geometry.batch > 1; }
int FftConvolver::padded_nz() const { return live().geometry.pz; }
int FftConvolver::padded_ny() const { return live().geometry.py; }
int FftConvolver::padded_nx() const { return live().geometry.px; }

Volume fft_convolve(const Volume& image, const Volume& kernel, Device device) {
  ISONET_CHECK(image.data.size() == image.size() && image.size() > 0 &&
                   image.data.size() == size_t(image.nz) * image.ny * image.nx,
               "fft_convolve: image data do not match its shape ", image.shape_str());
  require_finite(image, "fft_convolve image");
  FftConvolver conv(image.nz, image.ny, image.nx, kernel, device);
  Volume out(image.nz, image.ny, image.nx);
  out.voxel = image.voxel;
  conv.convolve(image.data.data(), out.data.data());
  return out;
}

}  // namespace isonet
