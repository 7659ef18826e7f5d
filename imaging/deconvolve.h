// deconvolve.h: Richardson-Lucy deconvolution of 2D/3D volumes, the classical baseline of the
// paper (its Table 1 "Deconv (RL)"). CPU: FFTW through FftConvolver; GPU: cuFFT with every
// iteration on the device (no host round trips between iterations).
//
// Model: data y = A x (+ Poisson noise), A = 'same' convolution with the PSF h (sum 1).
// Iteration (multiplicative, keeps x >= 0):
//   x <- x * A^T( w y / max(A x, eps) ) / A^T w,
// on an extended object domain, A^T being the correlation with h (the exact adjoint of A with
// zeros outside the extended domain). w is the data weight and A^T w the normalization that
// keeps the edges from being darkened. With m = the PSF half-size (kz/2, ky/2, kx/2):
//  - RlEdge::Reflect: the data are extended by m by mirror reflection (symmetric, the
//    edge voxel repeated: ... c b a | a b c ...), w = 1 on image + m, and the object domain
//    extends 2m, so every weighted voxel's blur is fully modelled (a constant image is then an
//    exact fixed point);
//  - RlEdge::Masked (default): the data are not extended; w = 1 on the image, the object domain extends
//    m, and the margin's estimate is constrained only by the blur it sends into the data (the
//    boundary-corrected RL of Bertero & Boccacci, 2005). It is the default because it assumes
//    nothing beyond the edge: on a ramp the reflected kink makes Reflect undershoot the edge
//    voxel by ~15% after 15 iterations, Masked by ~3% (tests/test_deconvolve.cpp).
// Voxels whose normalization A^T w is below 1e-4 (they send almost nothing into the data) keep
// their value. The start is the constant mean of the (weighted) data. eps = epsilon * max(y)
// keeps the division finite where the blur is ~0. Negative data values (after a background
// subtraction, say) are clipped to 0 first: RL's Poisson model has no negative counts.
// The result is cropped back to the image size and keeps the image's voxel size.
#pragma once
#include "imaging/volume.h"
#include "kernels/device.h"

namespace isonet {

enum class RlEdge { Reflect, Masked };

struct RichardsonLucyOptions {
  int iterations = 20;    // >= 0; 0 returns the starting estimate (the mean)
  double epsilon = 1e-6;  // denominator floor, relative to max(y); > 0
  RlEdge edge = RlEdge::Masked;
};

// image: [nz, ny, nx] (nz == 1 for 2D); psf: odd sizes, each <= the image's, non-negative,
// finite, any positive sum (normalized inside); for a 2D image the PSF must have nz == 1.
// Throws isonet::Error naming the problem; Device::CUDA without a usable GPU is an error.
Volume richardson_lucy(const Volume& image, const Volume& psf, const RichardsonLucyOptions& opt = {},
                       Device device = Device::CPU);

}  // namespace isonet
