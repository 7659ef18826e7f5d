// psf_training.h: the 2D kernels that blur lateral training planes so that they look like axial
// planes (the paper's eq. (2) and its "full" and "split" choices), derived from any 3D PSF
// (models or measured beads).
//
// Geometry. An axial slice of the data (the XZ plane at fixed y, or the YZ plane at fixed x)
// shows the PSF's section h(z, ., .) in that plane, while a lateral slice (YX at fixed z) shows
// the lateral section. For training, lateral planes [ny, nx] are blurred with a 2D kernel in
// which one lateral axis (`z_axis`, the axis the training code then decimates) plays z:
//   rotated (h_rot, "full"): the axial section mapped onto the plane; z -> z_axis, and the
//     section's lateral coordinate -> the other lateral axis;
//   isotropic (h_iso): the blur the lateral plane already has: the lateral section of h,
//     made x/y-isotropic by averaging over the square's 8 symmetries (flips of y and x and the
//     transpose; exact on the pixel grid, and the identity for rotationally symmetric PSFs);
//   split (h_split): the non-negative, sum-1 solution of h_rot = h_iso (x) h_split, cropped to
//     h_rot's size. For Gaussians (sigma_xy, sigma_z) the exact solution is the Gaussian with
//     sigma sqrt(sigma_z^2 - sigma_xy^2) along z_axis and a delta across it. Two solvers:
//     SplitMethod::RichardsonLucy (default): Richardson-Lucy deconvolution of h_rot by h_iso
//       (deconvolve.h, masked edges), which keeps h_split >= 0 while fitting; on the paper's
//       Gaussian 2/8 case it gives sigma 7.746 (exact 7.746) along z, 0.19 px across, and
//       reproduces h_rot to 0.4% (relative L2) after 1000 iterations;
//     SplitMethod::Wiener: the paper's regularized Fourier division
//       H_split = H_rot conj(H_iso) / (|H_iso|^2 + eps), real part, clipped at 0, renormalized.
//       Across z_axis it yields a low-pass ringing kernel instead of the delta (clipping its
//       negative lobes leaves ~2 px of extra width), so h_iso (x) h_split misses h_rot by ~17%
//       for every eps in [1e-12, 1e-2] on the Gaussian case; kept for comparison with the paper.
// Sections. RotatedPsfMode::CentralSlice (default) takes the central sections, as CSBDeep does
// (psf[:, centre, :] renormalized); RotatedPsfMode::Projection integrates the PSF along the
// slice normal instead (y for the XZ plane, z for the lateral plane), which is the exact in-plane
// blur for an object that is invariant along that normal (e.g. "a lateral plane convolved with
// the 3D rotated PSF, central plane taken" for an extended object); both coincide for a
// separable Gaussian.
//
// The PSF must be sampled on an isotropic grid (dz == dy == dx within 0.1%) with the lateral
// pixel size of the data, so that one kernel pixel is one data pixel along every role; build
// model PSFs or resample measured ones (measured_psf) on such a grid. Every returned kernel is
// a Volume [1, ky, kx] (odd sizes, centred, sum 1, non-negative) with the PSF's voxel size.
#pragma once
#include "imaging/volume.h"

namespace isonet {

enum class AxialPlane { XZ, YZ };        // which axial section of the 3D PSF the data's axial slices show
enum class LateralZAxis { Y, X };        // the lateral axis of the training plane that plays z
enum class RotatedPsfMode { CentralSlice, Projection };
enum class SplitMethod { RichardsonLucy, Wiener };

struct TrainingPsfOptions {
  AxialPlane plane = AxialPlane::XZ;
  LateralZAxis z_axis = LateralZAxis::X;
  RotatedPsfMode mode = RotatedPsfMode::CentralSlice;
  SplitMethod split_method = SplitMethod::RichardsonLucy;
  // RichardsonLucy: iterations (more resolve h_split more sharply across z_axis and fit the
  // noise of measured PSFs more closely).
  int split_iterations = 1000;
  // Wiener: regularization relative to |H_iso(0)|^2 = 1 (the kernels sum to 1).
  double split_eps = 1e-4;
};

struct TrainingPsfs {
  Volume rotated;    // h_rot   [1, ky, kx]
  Volume isotropic;  // h_iso   [1, K, K], K = max(psf ny, psf nx)
  Volume split;      // h_split [1, ky, kx] (h_rot's size)
};

// h_rot: ky x kx = (psf nz) x (section width) for z_axis Y, (section width) x (psf nz) for X,
// where the section width is psf nx for the XZ plane and psf ny for the YZ plane.
Volume rotated_psf(const Volume& psf, const TrainingPsfOptions& opt = {});

// h_iso: the lateral section (CentralSlice) or z-projection (Projection), zero-padded to a
// square and symmetrized; renormalized to sum 1.
Volume isotropic_psf(const Volume& psf, const TrainingPsfOptions& opt = {});

// h_split from given h_rot and h_iso 2D kernels (any odd sizes) by opt.split_method.
Volume split_psf(const Volume& rotated, const Volume& isotropic, const TrainingPsfOptions& opt = {});
// The two solvers. Wiener: computed in double precision on a grid of rot + iso - 1 per axis (no
// wrap-around). RichardsonLucy: on h_rot's grid (zero-padded to at least h_iso's size).
Volume split_psf_wiener(const Volume& rotated, const Volume& isotropic, double eps = 1e-4);
Volume split_psf_rl(const Volume& rotated, const Volume& isotropic, int iterations = 1000);

// All three at once.
TrainingPsfs training_psfs(const Volume& psf, const TrainingPsfOptions& opt = {});

}  // namespace isonet
