// cmd_simulate.h: `isonet simulate`: a synthetic phantom imaged by a microscope, as in the
// paper's simulations. Writes
//   <prefix>_gt.tif     isotropic ground truth: phantom (x) h_iso (the PSF's lateral profile used
//                       in every direction, apps/psf_spec.h isotropic_psf_3d), voxel dx^3
//   <prefix>_aniso.tif  the acquisition: phantom (x) h (full 3D PSF), every S-th plane kept
//                       (plane k at z = k*S, DESIGN.md section 5), optional camera noise (then in
//                       photon counts), voxel (S*dx, dx, dx)
//   <prefix>_psf.tif    the 3D PSF on the isotropic grid, voxel dx^3
#pragma once
#include <cstdint>
#include <string>

#include "imaging/noise.h"
#include "imaging/volume.h"

namespace isonet::app {

struct SimulateOptions {
  std::string kind = "nuclei";   // nuclei | membranes | nuclei+membranes
  int size = 128;                // N: the phantom is N^3
  std::string psf = "gaussian:2,8";
  std::string psf_units = "px";
  int psf_size = 0;              // 0: auto
  double subsample = 8.0;        // S >= 1
  std::string noise;             // "" / "none" or "poisson:PHOTONS[,read:SIGMA]" / "read:SIGMA"
  double pixel_size = 0.1;       // lateral pixel size in um (the phantom's voxel size)
  double radius = 0;             // nuclei: mean semi-axis in voxels (0: phantoms.h default)
  uint64_t seed = 1;
  std::string device = "auto";   // for the convolutions
  std::string out_prefix;
  bool quiet = false;
};

struct SimulateResult {
  Volume ground_truth, acquisition, psf;
  std::string gt_path, acquisition_path, psf_path;
};

// Parses --noise; enabled == false for "" or "none".
struct NoiseSpec {
  bool enabled = false;
  CameraNoise camera;
};
NoiseSpec parse_noise_spec(const std::string& text);

SimulateResult run_simulate(const SimulateOptions& opt);

}  // namespace isonet::app
