// cmd_psf.cpp: `isonet psf` (see cmd_psf.h).
#include "apps/cmd_psf.h"

#include <cstdio>
#include <ostream>

#include "apps/common.h"
#include "apps/psf_spec.h"
#include "imaging/psf.h"
#include "imaging/psf_training.h"
#include "imaging/tiff.h"
#include "kernels/error.h"

namespace isonet::app {

PsfCommandResult run_psf(const PsfCommandOptions& opt) {
  std::ostream& out = report_stream(opt.quiet);
  ISONET_CHECK(!opt.out_prefix.empty(), "psf: --out-prefix is required");
  const PsfSpec spec = parse_psf_spec(opt.psf);
  const auto v = parse_number_list(opt.voxel, 3, "--voxel", "Z,Y,X voxel size in um, e.g. 0.3,0.1,0.1");
  ISONET_CHECK(v[0] > 0 && v[1] > 0 && v[2] > 0, "--voxel: sizes must be > 0, got ", opt.voxel);
  const VoxelSize voxel{v[0], v[1], v[2], "um"};
  if (!nearly_equal(voxel.y, voxel.x, 1e-3))
    out << "warning: lateral voxel sizes differ (y " << voxel.y << ", x " << voxel.x
        << "); the training kernels use x\n";
  PsfBuildContext ctx;
  ctx.units = parse_psf_units(opt.psf_units);
  ctx.size = opt.size;
  if (!opt.psf_voxel.empty())
    ctx.file_voxel = parse_number_list(opt.psf_voxel, 3, "--psf-voxel", "Z,Y,X voxel size of the bead file");
  ctx.data_acquired_voxel = voxel;

  PsfCommandResult r;
  r.psf = build_psf(spec, voxel, ctx, out);
  out << "psf: " << describe_psf(spec, ctx.units) << " on grid " << r.psf.shape_str() << ", voxel "
      << describe_voxel(voxel) << "\n";
  const char* axis_names[3] = {"z", "y", "x"};
  const double spacing[3] = {voxel.z, voxel.y, voxel.x};
  for (int a = 0; a < 3; ++a) {
    char line[200];
    try {
      r.fwhm_um[a] = psf_fwhm(r.psf, a);
      std::snprintf(line, sizeof line, "  FWHM %s = %.4f um = %.3f lateral px; equivalent Gaussian sigma %.3f lateral px\n",
                    axis_names[a], r.fwhm_um[a], r.fwhm_um[a] / voxel.x,
                    psf_equivalent_sigma_px(r.psf, a) * spacing[a] / voxel.x);
    } catch (const Error& e) {
      std::snprintf(line, sizeof line, "  FWHM %s: not measurable on this grid (%s)\n", axis_names[a], e.what());
    }
    out << line;
  }

  // The training kernels need the isotropic grid of the lateral pixel size.
  const bool isotropic = nearly_equal(voxel.z, voxel.x, 1e-3) && nearly_equal(voxel.y, voxel.x, 1e-3);
  Volume iso_psf;
  if (isotropic) {
    iso_psf = r.psf;
  } else {
    PsfBuildContext iso_ctx = ctx;
    iso_ctx.size = 0;
    iso_psf = build_psf(spec, VoxelSize{voxel.x, voxel.x, voxel.x, "um"}, iso_ctx, out);
    out << "psf: training kernels from the PSF on the isotropic grid " << iso_psf.shape_str() << " of voxel "
        << voxel.x << " um\n";
  }
  TrainingPsfOptions topt;
  topt.plane = AxialPlane::XZ;
  topt.z_axis = LateralZAxis::Y;  // rows play z, as the training pairs and restore use them
  const TrainingPsfs k = training_psfs(iso_psf, topt);
  r.rotated = k.rotated;
  r.isotropic = k.isotropic;
  r.split = k.split;

  write_all_or_nothing({{opt.out_prefix + "_psf.tif", [&](const std::string& p) { write_tiff(p, r.psf); }},
                        {opt.out_prefix + "_rot.tif", [&](const std::string& p) { write_tiff(p, r.rotated); }},
                        {opt.out_prefix + "_iso.tif", [&](const std::string& p) { write_tiff(p, r.isotropic); }},
                        {opt.out_prefix + "_split.tif", [&](const std::string& p) { write_tiff(p, r.split); }}});
  out << "psf: wrote " << opt.out_prefix << "_{psf,rot,iso,split}.tif (kernels: rows = z; h_rot " << r.rotated.shape_str()
      << ", h_iso " << r.isotropic.shape_str() << ", h_split " << r.split.shape_str() << ")\n";
  return r;
}

}  // namespace isonet::app
