// app_test_util.h: helpers for the tests that drive the isonet commands through the app library
// (linked only into test_app_* and test_cuda_app).
#pragma once
#include <cstdint>
#include <string>

#include "apps/cmd_simulate.h"
#include "apps/cmd_train.h"
#include "test_util.h"

namespace isonet::test {

// A size^3 nuclei phantom (nuclei of `radius` px, phantom `seed`) acquired through a Gaussian PSF
// (sigma 1/3 px) with subsampling 4, simulated on the CPU so every device sees the same file;
// returns the path of the anisotropic TIFF (size/4 planes of size x size), `prefix`_aniso.tif in `dir`.
inline std::string simulated_acquisition(const TempDir& dir, int size, int radius, uint64_t seed = 1,
                                         const std::string& prefix = "sim") {
  app::SimulateOptions so;
  so.size = size;
  so.psf = "gaussian:1,3";
  so.subsample = 4;
  so.radius = radius;
  so.seed = seed;
  so.device = "cpu";
  so.out_prefix = dir.file(prefix);
  so.quiet = true;
  return app::run_simulate(so).acquisition_path;
}

// `isonet train` options for a test: input, PSF and model file given, on the CPU, silent (no
// report, no progress lines), one checkpoint at the end; the caller sets steps, batch, patch, ...
inline app::TrainOptions quiet_training(const std::string& input, const std::string& psf, const std::string& out) {
  app::TrainOptions o;
  o.inputs = {input};
  o.psf = psf;
  o.out = out;
  o.device = "cpu";
  o.checkpoint_every = 0;
  o.quiet = true;
  o.progress = nullptr;
  return o;
}

}  // namespace isonet::test
