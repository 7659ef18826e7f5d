// cmd_deconv.h: `isonet deconv`: Richardson-Lucy deconvolution (imaging/deconvolve.h), the
// classical baseline. The PSF is built on the input's own voxel grid (anisotropic data get an
// anisotropic PSF grid); a PSF larger than the volume is cropped to it (centred) and renormalized.
#pragma once
#include <string>

#include "imaging/tiff.h"
#include "imaging/volume.h"

namespace isonet::app {

struct DeconvOptions {
  std::string input, output;
  TiffSelection select;  // --channel / --frame of a hyperstack input
  std::string psf;
  std::string psf_units = "px";
  std::string psf_voxel;  // Z,Y,X of a measured PSF file without metadata
  int psf_size = 0;
  int iterations = 20;
  std::string edge = "reflect";  // reflect | masked
  std::string device = "auto";
  bool quiet = false;
};

// Deconvolves `image` with `psf` (cropped to fit), on `device`; the result keeps image's voxel.
Volume deconvolve_volume(const Volume& image, const Volume& psf, int iterations, const std::string& edge,
                         const std::string& device);

Volume run_deconv(const DeconvOptions& opt);

}  // namespace isonet::app
