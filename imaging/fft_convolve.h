// fft_convolve.h: 'same'-size linear convolution of 2D/3D volumes with a kernel through FFTs:
// FFTW (single precision) on the CPU, cuFFT on the GPU. The padded size covers image + kernel - 1
// (no wrap-around) rounded up to a 2,3,5,7-smooth size; the kernel is wrapped so that its centre
// voxel (kz/2, ky/2, kx/2) sits at the origin (so a centred delta kernel is the identity).
// Outside the image the data are zero (the caller pads first where another edge is wanted).
#pragma once
#include <memory>

#include "imaging/volume.h"
#include "kernels/device.h"

namespace isonet {

// Smallest n' >= n whose only prime factors are 2, 3, 5 and 7.
int next_fast_fft_size(int n);

// Convolver for a fixed image size and kernel: the kernel's transform (OTF) and the FFT plans
// are computed once and reused for every call (the cache for repeated use, e.g. Richardson-Lucy
// or training-pair generation over many planes).
class FftConvolver {
 public:
  // image_* : size of the images to be convolved; kernel: nz/ny/nx each <= image's padded size.
  FftConvolver(int image_nz, int image_ny, int image_nx, const Volume& kernel, Device device);
  ~FftConvolver();
  FftConvolver(FftConvolver&&) noexcept;
  FftConvolver& operator=(FftConvolver&&) noexcept;

  // out = image (*) kernel, both host arrays of image size [nz,ny,nx]; out may alias in.
  void convolve(const float* in, float* out);
  // out = image (*) flipped kernel (the adjoint, for Richardson-Lucy); out may alias in.
  void correlate(const float* in, float* out);
  // Device-pointer variants (CUDA convolvers only): in/out are device arrays of image size.
  void convolve_device(const float* in, float* out);
  void correlate_device(const float* in, float* out);

  Device device() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// One-shot convenience: 'same' convolution of `image` with `kernel` (keeps image.voxel).
Volume fft_convolve(const Volume& image, const Volume& kernel, Device device = Device::CPU);

}  // namespace isonet
