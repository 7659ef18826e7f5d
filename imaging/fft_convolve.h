// fft_convolve.h: 'same'-size linear convolution of 2D/3D volumes with a kernel through FFTs:
// FFTW (single precision) on the CPU, cuFFT on the GPU. The padded size covers image + kernel - 1
// (no wrap-around) rounded up to a 2,3,5,7-smooth size; the kernel is wrapped so that its centre
// voxel (kz/2, ky/2, kx/2) sits at the origin (so a centred delta kernel is the identity).
// Outside the image the data are zero (the caller pads first where another edge is wanted).
// Transform ranks:
//  - image nz == 1: a 2D transform; only the kernel's central plane reaches a single plane, so
//    a 3D kernel is reduced to it.
//  - kernel nz == 1 and image nz > 1 (batched planes): each of the nz planes [ny, nx] is
//    convolved with the 2D kernel independently (exactly the 3D convolution with a one-plane
//    kernel), as one batch of 2D transforms without padding along z. This is the mode for
//    stacks of lateral training planes [count, ny, nx] with one 2D kernel.
//  - otherwise a 3D transform.
// Precision: single-precision transforms; relative error vs. an exact convolution is a few
// 1e-7 times the largest |value| (grows ~log N with the transform size).
#pragma once
#include <memory>

#include "imaging/volume.h"
#include "kernels/device.h"
#include "kernels/fft_util.h"  // next_fast_fft_size

namespace isonet {

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

  // Not thread-safe per object (the buffers are shared between calls); use one convolver per
  // thread. Construction is thread-safe (FFTW planning is serialized by a global mutex).
  // out = image (*) kernel, both host arrays of image size [nz,ny,nx]; out may alias in.
  void convolve(const float* in, float* out);
  // out = image (*) flipped kernel (the adjoint, for Richardson-Lucy); out may alias in.
  void correlate(const float* in, float* out);
  // Device-pointer variants (CUDA convolvers only): in/out are device arrays of image size
  // [nz,ny,nx]; out may alias in. Work is queued on the default stream (legacy semantics, so
  // ordered with other default-stream work); the calls return without synchronizing.
  void convolve_device(const float* in, float* out);
  void correlate_device(const float* in, float* out);

  Device device() const;
  // True in the batched-planes mode (kernel nz == 1, image nz > 1).
  bool batched_planes() const;
  // Padded transform size (pz is the image nz in the batched-planes and 2D modes).
  int padded_nz() const;
  int padded_ny() const;
  int padded_nx() const;

 private:
  struct Impl;
  Impl& live() const;  // throws on a moved-from convolver
  std::unique_ptr<Impl> impl_;
};

// One-shot convenience: 'same' convolution of `image` with `kernel` (keeps image.voxel).
Volume fft_convolve(const Volume& image, const Volume& kernel, Device device = Device::CPU);

}  // namespace isonet
