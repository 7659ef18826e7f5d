// psf_spec.h: the --psf argument of the commands: parsing a PSF specification (a model with its
// parameters, or a measured bead TIFF) and building the PSF on a voxel grid.
//
// Accepted forms (psf_spec_forms() prints this list in error messages):
//   gaussian:SXY,SZ                          sigmas along y/x and z (units: --psf-units, px default)
//   widefield:NA,LAMBDA,N[,N_SAMPLE,DEPTH]   Gibson-Lanni/Born-Wolf, emission LAMBDA um, immersion N
//   confocal:NA,LAMBDA_EX,LAMBDA_EM,N,PINHOLE_AU
//   lightsheet:NA_DET,NA_ILL,LAMBDA,N        LAMBDA for excitation and emission
//   lightsheet:NA_DET,NA_ILL,LAMBDA_EX,LAMBDA_EM,N
//   PATH.tif | PATH.tiff | file:PATH         a measured bead volume
// Units: wavelengths always in um. Gaussian sigmas in lateral pixels of the data ("px": along z,
// too, a sigma is counted in lateral pixels, so 2,8 is the paper's 2/8 on the isotropic grid) or
// in um ("um").
//
// Measured PSF TIFFs are resampled onto the requested grid (imaging/psf.h measured_psf). Their
// voxel size comes from the file's metadata, or --psf-voxel; when the file states none and the
// data's voxel size is known, the PSF is refused (the two grids cannot be matched); when neither
// states one, the PSF is taken as recorded on the data's acquisition grid (and that is printed).
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

#include "imaging/psf.h"
#include "imaging/volume.h"

namespace isonet::app {

enum class PsfKind { Gaussian, Widefield, Confocal, LightSheet, File };
enum class PsfUnits { Pixels, Microns };

struct PsfSpec {
  PsfKind kind = PsfKind::Gaussian;
  std::vector<double> values;  // the numbers after "kind:" as given
  std::string path;            // PsfKind::File
  std::string text;            // the spec as given
};

// The accepted forms, one per line (for --help and error messages).
const char* psf_spec_forms();

// Parses a --psf value. Throws isonet::Error naming the problem and listing the accepted forms.
PsfSpec parse_psf_spec(const std::string& text);
// "px" or "um" (also "pixels", "micron", "microns").
PsfUnits parse_psf_units(const std::string& text);

// Human-readable description stored in model files and printed ("gaussian sigma_xy=2 px
// sigma_z=8 px", "widefield NA=1.2 lambda=0.52 um n=1.33", "file psf.tif").
std::string describe_psf(const PsfSpec& spec, PsfUnits units);

struct PsfBuildContext {
  PsfUnits units = PsfUnits::Pixels;
  int size = 0;  // grid size (odd) along every axis; 0: chosen from the PSF's extent (auto_psf_grid)
  // Measured PSFs only:
  std::vector<double> file_voxel;    // --psf-voxel Z,Y,X (in the data's unit); empty: from the file
  bool data_voxel_known = true;      // the data stated a physical voxel size
  VoxelSize data_acquired_voxel;     // the data's voxel as acquired (for the unknown-voxel rule)
};

// The PSF of `spec` on a grid with voxel size `voxel` (physical, e.g. the data's lateral pixel
// size along every axis for training, or the acquired grid for deconvolution); grid size from
// ctx.size or auto. Logs what it does for measured PSFs (resampling) to `log`.
Volume build_psf(const PsfSpec& spec, const VoxelSize& voxel, const PsfBuildContext& ctx, std::ostream& log);

// The grid (odd sizes) that holds the PSF's significant part on voxel size `voxel`: for a
// Gaussian 4 sigma each side, for optical models about 2.5 lateral and 2 axial FWHM each side
// (at most 129 voxels per axis; at least 7). Measured PSFs: the bead's physical extent.
PsfGrid auto_psf_grid(const PsfSpec& spec, const VoxelSize& voxel, const PsfBuildContext& ctx);

// Isotropic 3D version of a PSF: the lateral profile through the centre, used along every
// direction (h_iso3(r) = lateral profile at radius r, linear interpolation; r in physical units,
// so an anisotropic grid is handled), normalized to sum 1. For a Gaussian PSF this is the
// isotropic Gaussian with sigma_xy. The ground truth of `simulate` is the phantom blurred by it.
Volume isotropic_psf_3d(const Volume& psf);

}  // namespace isonet::app
