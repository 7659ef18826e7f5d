// deconvolve_backend.h: internals shared by the CPU (deconvolve.cpp) and CUDA (deconvolve.cu)
// Richardson-Lucy iterations: the prepared problem on the extended domain and the two
// elementwise update rules, written once for both sides. Not part of the public API.
#pragma once
#include <vector>

#include "imaging/volume.h"
#include "kernels/hostdevice.h"

namespace isonet::detail {

// Everything on the extended domain [nz, ny, nx] (the image plus a margin on every side).
struct RlProblem {
  int nz = 0, ny = 0, nx = 0;
  int mz = 0, my = 0, mx = 0;  // margin: the image starts at (mz, my, mx)
  std::vector<float> y;  // [nz, ny, nx] data (reflected into the margin, or 0 there when masked)
  std::vector<float> w;  // [nz, ny, nx] data weight (1, or 0 in a masked margin)
  float x0 = 0;          // constant start
  float eps = 0;         // absolute denominator floor
  int iterations = 0;
};

// Voxels whose normalization A^T w is below this send < 0.01% of a PSF into the data: the
// update would divide rounding noise by rounding noise, so they keep their value.
constexpr float kRlNormFloor = 1e-4f;

// The data term w y / max(A x, eps).
ISONET_HD float rl_ratio(float y, float w, float blur, float eps) { return w * y / (blur > eps ? blur : eps); }

// x * A^T(ratio) / A^T w, clipped at 0 (single-precision FFT rounding can make A^T(ratio)
// slightly negative where the data are 0).
ISONET_HD float rl_update(float x, float corr, float norm) {
  if (!(norm >= kRlNormFloor)) return x;
  const float v = x * corr / norm;
  return v > 0.f ? v : 0.f;
}

#if ISONET_HAS_CUDA
// Runs p.iterations on the GPU; psf: sum 1, odd sizes. Returns the estimate [nz, ny, nx].
std::vector<float> richardson_lucy_cuda(const RlProblem& p, const Volume& psf);
#endif

}  // namespace isonet::detail
