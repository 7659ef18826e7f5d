// cmd_psf.h: `isonet psf`: writes a PSF and the 2D training kernels derived from it, and prints
// its FWHMs and the equivalent Gaussian sigmas (the answer to "which sigma"). Files:
//   <prefix>_psf.tif    the 3D PSF on the --voxel grid
//   <prefix>_rot.tif    h_rot, the axial section mapped onto a lateral plane (rows play z)
//   <prefix>_iso.tif    h_iso, the lateral blur the lateral planes already have
//   <prefix>_split.tif  h_split, with h_rot = h_iso (x) h_split (the paper's split PSF)
// The 2D kernels live on the isotropic grid of the lateral pixel size (imaging/psf_training.h);
// they are the kernels `train` blurs its lateral training planes with (rows = z, the XZ section).
#pragma once
#include <string>

#include "imaging/volume.h"

namespace isonet::app {

struct PsfCommandOptions {
  std::string psf;
  std::string psf_units = "px";
  std::string voxel = "0.1,0.1,0.1";  // Z,Y,X in um
  std::string psf_voxel;              // Z,Y,X of a measured PSF file without metadata
  int size = 0;                       // odd grid size along every axis; 0: auto
  std::string out_prefix;
  bool quiet = false;
};

struct PsfCommandResult {
  Volume psf, rotated, isotropic, split;
  double fwhm_um[3] = {0, 0, 0};  // z, y, x (0 when not measurable on the grid)
};

PsfCommandResult run_psf(const PsfCommandOptions& opt);

}  // namespace isonet::app
