// psf.h: point-spread function models and measured bead PSFs on a given voxel grid.
// Every function returns a float32 ZYX volume of the grid's (odd) size, centred on the middle
// voxel (nz/2, ny/2, nx/2), non-negative and normalized to sum 1, with the grid's voxel size.
// Axes: z is the detection (optical) axis, y and x the lateral camera axes. Lengths in um
// unless a name says _px (pixels of the grid).
#pragma once
#include <string>

#include "imaging/volume.h"

namespace isonet {

// The sampling grid of a PSF: odd sizes (so that the centre is a voxel) and the voxel size in um.
struct PsfGrid {
  int nz = 0, ny = 0, nx = 0;
  VoxelSize voxel;  // z, y, x spacing in um
};

// Throws isonet::Error naming `what` unless every size is odd and >= 1 and every spacing > 0.
void check_psf_grid(const PsfGrid& grid, const char* what);

// Anisotropic Gaussian, sigmas in PIXELS of the grid (sigma_xy along y and x, sigma_z along z;
// the paper's synthetic case is sigma_xy / sigma_z = 2 / 8 pixels). A sigma of 0 gives a delta
// along that axis. The Gaussian is sampled at voxel centres (not integrated over the voxel).
Volume gaussian_psf(const PsfGrid& grid, double sigma_xy_px, double sigma_z_px);

// Scalar widefield PSF (Gibson-Lanni with matched coverslip and immersion; Born-Wolf when the
// sample index equals the immersion index or depth is 0):
//   I(r, z) = | int_0^1 J0(k0 NA r rho) exp(i k0 W(rho, z)) rho drho |^2,  k0 = 2 pi / lambda,
//   W(rho, z) = z sqrt(n^2 - NA^2 rho^2) + depth (sqrt(ns^2 - NA^2 rho^2) - sqrt(n^2 - NA^2 rho^2)),
// the exact (non-paraxial) defocus phase of a focus shift z in immersion index n, plus the
// spherical aberration of focusing `depth` um into a sample of index ns. With a mismatch the
// intensity maximum moves off z = 0 (the physical focal shift); the model keeps that shift.
// The integral uses composite Simpson with enough samples for the phase (>= 8 per 2 pi, >= 200).
struct WidefieldParams {
  double na = 1.2;               // numerical aperture of the objective (< n)
  double wavelength_um = 0.52;   // emission wavelength in vacuum
  double n_immersion = 1.33;     // refractive index of the immersion medium (design)
  double n_sample = 0.0;         // sample index; 0 means equal to n_immersion (Born-Wolf)
  double depth_um = 0.0;         // depth of the emitter below the coverslip (used if indices differ)
};
Volume widefield_psf(const PsfGrid& grid, const WidefieldParams& p);

// Confocal PSF: excitation x (emission convolved laterally with the pinhole), both widefield
// models above with their own wavelengths. The pinhole is a disk of diameter
// pinhole_au * 1.22 lambda_em / NA (Airy units, referred to the sample); 0 is a point pinhole,
// giving widefield(lambda_ex) * widefield(lambda_em).
struct ConfocalParams {
  double na = 1.1;
  double wavelength_ex_um = 0.488;
  double wavelength_em_um = 0.52;
  double n_immersion = 1.33;
  double pinhole_au = 0.0;  // pinhole diameter in Airy units (0: point pinhole)
};
Volume confocal_psf(const PsfGrid& grid, const ConfocalParams& p);

// Light-sheet PSF: detection widefield PSF (na_detect, lambda_em) times the illumination sheet's
// intensity profile along z. The sheet is a Gaussian beam focused along z by na_illum that
// propagates along +x and is uniform along y (a static sheet or a y-scanned beam):
//   w0 = lambda_ex / (pi na_illum), zR = pi w0^2 n / lambda_ex, w(x) = w0 sqrt(1 + (x / zR)^2),
//   I_sheet(x, z) = (w0 / w(x)) exp(-2 z^2 / w(x)^2)   (x = 0 at the grid centre = the waist).
struct LightSheetParams {
  double na_detect = 0.8;
  double na_illum = 0.1;
  double wavelength_ex_um = 0.488;
  double wavelength_em_um = 0.52;
  double n_immersion = 1.33;
};
Volume lightsheet_psf(const PsfGrid& grid, const LightSheetParams& p);

// Preparing a measured bead image as a PSF.
enum class PsfBackground {
  BorderMedian,  // median of the outermost voxel layer of the bead volume (default)
  Percentile,    // the given low percentile of all voxels
  None,          // the data are already background-free
};
enum class PsfCentering {
  Peak,      // centre on the peak voxel (of a 3x3x3 box-smoothed copy, robust to hot pixels):
             // an integer shift, exact when the voxel sizes match
  Centroid,  // centre on the intensity centroid within a window (half-size 2 x the half-width
             // at half maximum along each axis) around the peak: a sub-voxel shift applied by
             // the trilinear resampling
};
struct MeasuredPsfOptions {
  PsfBackground background = PsfBackground::BorderMedian;
  double percentile = 5.0;  // for PsfBackground::Percentile, in [0, 100]
  PsfCentering centering = PsfCentering::Peak;
  // Voxel size of the bead data when the file carries none (the TIFF default is 1.0 along every
  // axis, which read_measured_psf cannot tell apart from a real 1 um voxel): > 0 overrides.
  double source_dz_um = 0, source_dy_um = 0, source_dx_um = 0;
};

// What measured_psf found in the bead volume (for the log).
struct MeasuredPsfInfo {
  double background = 0;   // subtracted from every voxel (0 with PsfBackground::None)
  double noise = 0;        // noise level of the border: 1.4826 x its median absolute deviation
  double peak = 0;         // brightest 3x3x3-smoothed value above the background
  int peak_z = 0, peak_y = 0, peak_x = 0;  // where, in bead voxels
};

// Turns a bead volume (any size, voxel size taken from bead.voxel unless overridden) into a PSF
// on `grid`: subtract the background, clip at 0, find the peak, resample the physical grid
// trilinearly around it (averaging sub-samples across the target voxel when the target voxel
// is coarser than the source, so that no energy between samples is missed; zero outside the
// bead volume), clip at 0 and normalize to sum 1. Errors: NaN/Inf, empty or negative-only data
// (no peak above the background), a peak on the outer voxel layer (bead cut by the volume),
// even or zero grid sizes.
// info (optional) receives what was found.
Volume measured_psf(const Volume& bead, const PsfGrid& grid, const MeasuredPsfOptions& opt = {},
                    MeasuredPsfInfo* info = nullptr);

// read_tiff(path) followed by measured_psf (errors name the file).
Volume load_measured_psf(const std::string& path, const PsfGrid& grid, const MeasuredPsfOptions& opt = {});

// --- PSF utilities ----------------------------------------------------------------------------

// Scales v to sum 1. Throws isonet::Error naming `what` when the sum is not finite and > 0.
void normalize_sum(Volume& v, const char* what);

// Full width at half maximum, in um, of the intensity profile through the maximum voxel along
// axis 0 (z), 1 (y) or 2 (x), measured by linear interpolation between the voxels around the
// two half-maximum crossings. Throws when the profile does not fall below half maximum on both
// sides inside the volume (then the grid is too small to measure it).
double psf_fwhm(const Volume& psf, int axis);

// Standard deviation (in pixels) of the Gaussian with the same FWHM along `axis`: FWHM / 2.3548,
// FWHM here in pixels. The answer to "which sigma" for the Gaussian model.
double psf_equivalent_sigma_px(const Volume& psf, int axis);

}  // namespace isonet
