// fft_convolve_backend.h: internals shared by the FFTW (fft_convolve.cpp) and cuFFT
// (fft_convolve.cu) implementations of FftConvolver: the transform geometry, the wrapped kernel
// and the backend interface. Not part of the public API.
#pragma once
#include <cstddef>
#include <memory>
#include <vector>

#include "imaging/volume.h"

namespace isonet::detail {

// The transform geometry: a real grid [pz, py, px] (image in the corner, zeros elsewhere) and
// its half spectrum [pz, py, px/2+1]. Rank 3: one 3D transform. Rank 2: `batch` = pz
// independent 2D transforms of [py, px] (2D images and the batched-planes mode; cuFFT runs
// them as one batched plan, FFTW plane by plane in parallel), and the OTF is one 2D half
// spectrum [py, px/2+1] shared by every plane.
struct FftGeometry {
  int nz = 0, ny = 0, nx = 0;  // image
  int kz = 0, ky = 0, kx = 0;  // kernel as transformed (kz = 1 in rank 2)
  int pz = 0, py = 0, px = 0;  // padded grid
  int rank = 3;
  int batch = 1;

  size_t image_count() const { return size_t(nz) * ny * nx; }
  size_t real_count() const { return size_t(pz) * py * px; }
  size_t complex_count() const { return size_t(pz) * py * (px / 2 + 1); }
  size_t otf_count() const { return rank == 3 ? complex_count() : size_t(py) * (px / 2 + 1); }
  // Real samples per transform; cuFFT and FFTW both leave the 1/N of the inverse to the caller.
  double transform_size() const { return rank == 3 ? double(pz) * py * px : double(py) * px; }
};

FftGeometry make_fft_geometry(int nz, int ny, int nx, const Volume& kernel);

// The kernel (its central plane in rank 2 when kernel.nz > 1) on one transform's real grid
// ([pz, py, px] in rank 3, [py, px] in rank 2), zero elsewhere, its centre voxel (kz/2, ky/2,
// kx/2) at the origin: kernel voxel k goes to (k - k/2) mod p along each axis.
std::vector<float> wrap_kernel(const FftGeometry& g, const Volume& kernel);

class FftBackend {
 public:
  virtual ~FftBackend() = default;
  // out = in (*) kernel (adjoint: correlation with the kernel). in/out: [nz, ny, nx] arrays on
  // the host, or on the device when device_pointers. out may alias in.
  virtual void run(const float* in, float* out, bool adjoint, bool device_pointers) = 0;
};

// wrapped: wrap_kernel(g, kernel). The backend computes and keeps the OTF.
std::unique_ptr<FftBackend> make_fftw_backend(const FftGeometry& g, const std::vector<float>& wrapped);
#if ISONET_HAS_CUDA
std::unique_ptr<FftBackend> make_cufft_backend(const FftGeometry& g, const std::vector<float>& wrapped);
#endif

}  // namespace isonet::detail
