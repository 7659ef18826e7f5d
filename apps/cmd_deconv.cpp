// cmd_deconv.cpp: `isonet deconv` (see cmd_deconv.h).
#include "apps/cmd_deconv.h"

#include <algorithm>
#include <ostream>

#include "apps/common.h"
#include "apps/psf_spec.h"
#include "imaging/deconvolve.h"
#include "imaging/psf.h"
#include "imaging/tiff.h"
#include "kernels/device.h"
#include "kernels/error.h"

namespace isonet::app {
namespace {

// Largest odd size <= n.
int odd_at_most(int n) { return n % 2 == 1 ? n : n - 1; }

// Centre crop of `psf` to at most the image's size per axis (odd), renormalized.
Volume fit_psf(const Volume& psf, const Volume& image) {
  const int nz = std::min(psf.nz, odd_at_most(image.nz)), ny = std::min(psf.ny, odd_at_most(image.ny)),
            nx = std::min(psf.nx, odd_at_most(image.nx));
  if (nz == psf.nz && ny == psf.ny && nx == psf.nx) return psf;
  Volume out(nz, ny, nx);
  out.voxel = psf.voxel;
  const int oz = (psf.nz - nz) / 2, oy = (psf.ny - ny) / 2, ox = (psf.nx - nx) / 2;
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) out.at(z, y, x) = psf.at(z + oz, y + oy, x + ox);
  normalize_sum(out, "cropped PSF");
  return out;
}

}  // namespace

Volume deconvolve_volume(const Volume& image, const Volume& psf, int iterations, const std::string& edge,
                         const std::string& device) {
  RichardsonLucyOptions o;
  o.iterations = iterations;
  if (edge == "reflect") o.edge = RlEdge::Reflect;
  else if (edge == "masked") o.edge = RlEdge::Masked;
  else fail("deconv: unknown --edge '", edge, "' (accepted: reflect, masked)");
  const Device d = select_device(device);
  Volume result;
  with_oom_hint([&] { result = richardson_lucy(image, fit_psf(psf, image), o, d); },
                {"the volume and its FFT buffers do not fit on the GPU: use --device cpu",
                 "the volume and its FFT buffers do not fit in host memory: deconvolve a smaller region"});
  result.voxel = image.voxel;
  return result;
}

Volume run_deconv(const DeconvOptions& opt) {
  std::ostream& out = report_stream(opt.quiet);
  ISONET_CHECK(!opt.output.empty(), "deconv: --output is required");
  ISONET_CHECK(opt.iterations >= 0, "deconv: --iterations must be >= 0, got ", opt.iterations);
  TiffInfo info;
  const Volume image = read_volume(opt.input, "input", &info, 1, opt.select);
  const PsfSpec spec = parse_psf_spec(opt.psf);
  PsfBuildContext ctx;
  ctx.units = parse_psf_units(opt.psf_units);
  ctx.size = opt.psf_size;
  if (!opt.psf_voxel.empty())
    ctx.file_voxel = parse_number_list(opt.psf_voxel, 3, "--psf-voxel", "Z,Y,X voxel size of the bead file");
  ctx.data_voxel_known = info.has_z_spacing || info.has_xy_size;
  ctx.data_acquired_voxel = image.voxel;
  const Volume psf = build_psf(spec, image.voxel, ctx, out);
  out << "deconv: " << opt.input << " " << image.shape_str() << ", voxel " << describe_voxel(image.voxel) << ", PSF "
      << describe_psf(spec, ctx.units) << " on grid " << psf.shape_str() << ", " << opt.iterations
      << " Richardson-Lucy iterations\n";
  Volume result = deconvolve_volume(image, psf, opt.iterations, opt.edge, opt.device);
  write_tiff(opt.output, result);
  out << "deconv: wrote " << opt.output << "\n";
  return result;
}

}  // namespace isonet::app
