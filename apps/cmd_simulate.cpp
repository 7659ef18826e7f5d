// cmd_simulate.cpp: `isonet simulate` (see cmd_simulate.h).
#include "apps/cmd_simulate.h"

#include <iostream>
#include <sstream>

#include "apps/common.h"
#include "apps/psf_spec.h"
#include "apps/subsampling.h"
#include "imaging/fft_convolve.h"
#include "imaging/phantoms.h"
#include "imaging/resample.h"
#include "imaging/tiff.h"
#include "kernels/device.h"
#include "kernels/error.h"

namespace isonet::app {
namespace {

constexpr const char* kNoiseForms = "none | poisson:PHOTONS | poisson:PHOTONS,read:SIGMA | read:SIGMA";

Phantom make_phantom(const SimulateOptions& opt) {
  const int n = opt.size;
  if (opt.kind == "nuclei") {
    NucleiParams p;
    p.radius = opt.radius;
    p.seed = opt.seed;
    return make_nuclei(n, n, n, p);
  }
  if (opt.kind == "membranes") {
    MembraneParams p;
    p.seed = opt.seed;
    return make_membranes(n, n, n, p);
  }
  if (opt.kind == "nuclei+membranes" || opt.kind == "cells") {
    CellsParams p;
    p.membranes.seed = opt.seed;
    return make_cells(n, n, n, p);
  }
  fail("unknown phantom kind '", opt.kind, "' (accepted: nuclei, membranes, nuclei+membranes)");
}

}  // namespace

NoiseSpec parse_noise_spec(const std::string& text) {
  NoiseSpec spec;
  if (text.empty() || text == "none") return spec;
  spec.enabled = true;
  spec.camera.poisson = false;
  spec.camera.photons_per_unit = 1.0;
  std::stringstream ss(text);
  std::string item;
  bool have_poisson = false, have_read = false;
  auto bad = [&](const std::string& why) { fail("cannot read --noise '", text, "': ", why, "; expected ", kNoiseForms); };
  while (std::getline(ss, item, ',')) {
    const size_t colon = item.find(':');
    if (colon == std::string::npos) bad("'" + item + "' has no ':'");
    const std::string key = item.substr(0, colon);
    std::vector<double> v;
    try {
      v = parse_number_list(item.substr(colon + 1), 1, "--noise", kNoiseForms);
    } catch (const Error& e) {
      bad(e.what());
    }
    if (key == "poisson" && !have_poisson) {
      if (!(v[0] > 0)) bad("PHOTONS must be > 0");
      spec.camera.poisson = true;
      spec.camera.photons_per_unit = v[0];
      have_poisson = true;
    } else if (key == "read" && !have_read) {
      if (!(v[0] >= 0)) bad("SIGMA must be >= 0");
      spec.camera.read_sigma = v[0];
      have_read = true;
    } else {
      bad("unexpected '" + key + "'");
    }
  }
  return spec;
}

SimulateResult run_simulate(const SimulateOptions& opt) {
  ISONET_CHECK(!opt.out_prefix.empty(), "simulate: --out-prefix is required");
  ISONET_CHECK(opt.size >= 8 && opt.size <= 4096, "simulate: --size must be in [8, 4096], got ", opt.size);
  ISONET_CHECK(opt.pixel_size > 0, "simulate: --pixel-size must be > 0, got ", opt.pixel_size);
  check_subsampling(opt.subsample, "--subsample");
  const PsfSpec spec = parse_psf_spec(opt.psf);
  const NoiseSpec noise = parse_noise_spec(opt.noise);
  const Device device = select_device(opt.device);
  std::ostream& out = report_stream(opt.quiet);

  const double dx = opt.pixel_size;
  const VoxelSize iso{dx, dx, dx, "um"};
  PsfBuildContext ctx;
  ctx.units = parse_psf_units(opt.psf_units);
  ctx.size = opt.psf_size;
  ctx.data_acquired_voxel = VoxelSize{opt.subsample * dx, dx, dx, "um"};
  SimulateResult r;
  r.psf = build_psf(spec, iso, ctx, out);
  const Volume h_iso = isotropic_psf_3d(r.psf);
  out << "simulate: " << opt.kind << " phantom " << opt.size << "^3, voxel " << format_exact(dx) << " um, PSF "
      << describe_psf(spec, ctx.units) << " (grid " << r.psf.shape_str() << ")\n";

  Phantom ph = make_phantom(opt);
  ph.density.voxel = iso;
  out << "simulate: " << ph.num_labels << " objects\n";

  r.ground_truth = fft_convolve(ph.density, h_iso, device);
  r.ground_truth.voxel = iso;
  Volume blurred = fft_convolve(ph.density, r.psf, device);
  blurred.voxel = iso;
  r.acquisition = subsample_axis(blurred, kAxisZ, opt.subsample);
  r.acquisition.voxel = VoxelSize{opt.subsample * dx, dx, dx, "um"};
  if (noise.enabled) {
    CameraNoise cam = noise.camera;
    cam.seed = opt.seed * 0x9E3779B97F4A7C15ull + 7;
    r.acquisition = apply_camera_noise(r.acquisition, cam);
    r.acquisition.voxel = VoxelSize{opt.subsample * dx, dx, dx, "um"};
    out << "simulate: camera noise " << (cam.poisson ? "Poisson " + std::to_string(cam.photons_per_unit) + " photons/unit" : "no shot noise")
        << ", read noise sigma " << cam.read_sigma << " counts (acquisition in counts)\n";
  }
  out << "simulate: acquisition " << r.acquisition.shape_str() << " (every plane k at z = k*S, S = "
      << format_exact(opt.subsample, 6) << "), ground truth " << r.ground_truth.shape_str() << "\n";

  r.psf_path = opt.out_prefix + "_psf.tif";
  r.gt_path = opt.out_prefix + "_gt.tif";
  r.acquisition_path = opt.out_prefix + "_aniso.tif";
  write_all_or_nothing({{r.psf_path, [&](const std::string& p) { write_tiff(p, r.psf); }},
                        {r.gt_path, [&](const std::string& p) { write_tiff(p, r.ground_truth); }},
                        {r.acquisition_path, [&](const std::string& p) { write_tiff(p, r.acquisition); }}});
  out << "simulate: wrote " << r.acquisition_path << ", " << r.gt_path << ", " << r.psf_path << "\n";
  return r;
}

}  // namespace isonet::app
