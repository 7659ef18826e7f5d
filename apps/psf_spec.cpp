// psf_spec.cpp: parsing --psf specifications and building PSFs on voxel grids (see psf_spec.h).
#include "apps/psf_spec.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <ostream>
#include <sstream>

#include "apps/common.h"
#include "imaging/tiff.h"
#include "kernels/error.h"

namespace isonet::app {
namespace {

constexpr int kMaxAutoSize = 129;
constexpr int kMinAutoSize = 7;

std::string lower(std::string s) {
  for (auto& c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

[[noreturn]] void bad_spec(const std::string& text, const std::string& why) {
  fail("unknown or malformed PSF spec '", text, "': ", why, "\naccepted forms:\n", psf_spec_forms());
}

// Grid pixels of a Gaussian spec along the lateral axes and z, for a grid of voxel size `v`.
void gaussian_sigmas_px(const PsfSpec& spec, PsfUnits units, const VoxelSize& v, double& sxy, double& sz) {
  if (units == PsfUnits::Pixels) {
    sxy = spec.values[0];                  // lateral pixels of the grid (= of the data)
    sz = spec.values[1] * v.x / v.z;       // sigma counted in lateral pixels, expressed in z voxels
  } else {
    sxy = spec.values[0] / v.x;
    sz = spec.values[1] / v.z;
  }
}

void require_microns(const PsfSpec& spec, const VoxelSize& v) {
  ISONET_CHECK(v.unit == "um", "the ", spec.text.substr(0, spec.text.find(':')),
               " PSF model needs the voxel size in um, but the data's voxel size is in '", v.unit,
               "' (no physical size in the TIFF?): give the voxel size (e.g. --voxel Z,Y,X in um) or use a "
               "gaussian:SXY,SZ spec in pixels");
}

// Axial and lateral FWHM (um) estimates used to size model grids.
void optical_extent(const PsfSpec& spec, double& fwhm_xy, double& fwhm_z) {
  double na = spec.values[0], lambda = 0, n = 0;
  switch (spec.kind) {
    case PsfKind::Widefield: lambda = spec.values[1]; n = spec.values[2]; break;
    case PsfKind::Confocal: lambda = spec.values[2]; n = spec.values[3]; break;
    case PsfKind::LightSheet:
      lambda = spec.values.size() == 4 ? spec.values[2] : spec.values[3];
      n = spec.values.back();
      break;
    default: break;
  }
  fwhm_xy = 0.51 * lambda / na;
  fwhm_z = 0.88 * lambda / (n - std::sqrt(std::max(0.0, n * n - na * na)));
}

int odd_size(double half) {
  int h = int(std::ceil(half - 1e-9));  // 4 * 2.0000000000000004 is 8 voxels, not 9
  int size = 2 * h + 1;
  size = std::max(size, kMinAutoSize);
  return std::min(size, kMaxAutoSize);
}

// The voxel size of a measured PSF file (see psf_spec.h for the rules).
VoxelSize measured_voxel(const PsfSpec& spec, const VoxelSize& target, const PsfBuildContext& ctx,
                         const TiffInfo& info, std::ostream& log) {
  if (!ctx.file_voxel.empty()) {
    VoxelSize v{ctx.file_voxel[0], ctx.file_voxel[1], ctx.file_voxel[2], target.unit};
    log << "PSF '" << spec.path << "': voxel size " << describe_voxel(v) << " (from --psf-voxel)\n";
    return v;
  }
  if (info.has_z_spacing && info.has_xy_size) {
    ISONET_CHECK(info.voxel.unit == target.unit, "PSF '", spec.path, "' has its voxel size in '", info.voxel.unit,
                 "' but the data's is in '", target.unit, "': convert one of them (or give --psf-voxel Z,Y,X)");
    return info.voxel;
  }
  if (!ctx.data_voxel_known) {
    log << "PSF '" << spec.path << "' and the data state no voxel size: the PSF is taken as recorded on the data's "
        << "acquisition grid (" << describe_voxel(ctx.data_acquired_voxel) << ")\n";
    return ctx.data_acquired_voxel;
  }
  fail("PSF '", spec.path, "' states no voxel size (", info.has_z_spacing ? "" : "no z spacing",
       info.has_z_spacing || info.has_xy_size ? "" : ", ", info.has_xy_size ? "" : "no lateral pixel size",
       ") while the data's is ", describe_voxel(ctx.data_acquired_voxel),
       ": the PSF cannot be matched to the data's grid. Give the bead's voxel size with --psf-voxel Z,Y,X (in ",
       target.unit, ") or write it into the TIFF (ImageJ spacing= and resolution)");
}

}  // namespace

const char* psf_spec_forms() {
  return "  gaussian:SXY,SZ                          Gaussian sigmas (lateral, axial) in --psf-units (px default)\n"
         "  widefield:NA,LAMBDA,N[,N_SAMPLE,DEPTH]   widefield (Born-Wolf/Gibson-Lanni), LAMBDA in um\n"
         "  confocal:NA,LAMBDA_EX,LAMBDA_EM,N,PINHOLE_AU\n"
         "  lightsheet:NA_DET,NA_ILL,LAMBDA,N        (or NA_DET,NA_ILL,LAMBDA_EX,LAMBDA_EM,N)\n"
         "  PATH.tif | PATH.tiff | file:PATH         measured bead PSF\n";
}

PsfSpec parse_psf_spec(const std::string& text) {
  PsfSpec spec;
  spec.text = text;
  if (text.empty()) bad_spec(text, "empty");
  const std::string low = lower(text);
  if (low.rfind("file:", 0) == 0 || ends_with(low, ".tif") || ends_with(low, ".tiff")) {
    spec.kind = PsfKind::File;
    spec.path = low.rfind("file:", 0) == 0 ? text.substr(5) : text;
    if (spec.path.empty()) bad_spec(text, "no file name after 'file:'");
    return spec;
  }
  const size_t colon = text.find(':');
  if (colon == std::string::npos) bad_spec(text, "no ':' after the model name (and not a .tif file)");
  const std::string kind = lower(text.substr(0, colon));
  const std::string rest = text.substr(colon + 1);
  std::vector<int> counts;
  if (kind == "gaussian") {
    spec.kind = PsfKind::Gaussian;
    counts = {2};
  } else if (kind == "widefield") {
    spec.kind = PsfKind::Widefield;
    counts = {3, 5};
  } else if (kind == "confocal") {
    spec.kind = PsfKind::Confocal;
    counts = {5};
  } else if (kind == "lightsheet" || kind == "light-sheet") {
    spec.kind = PsfKind::LightSheet;
    counts = {4, 5};
  } else {
    bad_spec(text, "unknown model '" + kind + "'");
  }
  try {
    spec.values = parse_number_list(rest, -1, "PSF parameters", "numbers separated by commas");
  } catch (const Error& e) {
    bad_spec(text, e.what());
  }
  if (std::find(counts.begin(), counts.end(), int(spec.values.size())) == counts.end()) {
    std::ostringstream os;
    os << kind << " takes " << counts[0];
    if (counts.size() > 1) os << " or " << counts[1];
    os << " numbers, got " << spec.values.size();
    bad_spec(text, os.str());
  }
  const auto& v = spec.values;
  auto need = [&](bool ok, const std::string& why) {
    if (!ok) bad_spec(text, why);
  };
  switch (spec.kind) {
    case PsfKind::Gaussian:
      need(v[0] >= 0 && v[1] >= 0, "sigmas must be >= 0");
      break;
    case PsfKind::Widefield:
      need(v[0] > 0 && v[1] > 0 && v[2] > 0, "NA, LAMBDA and N must be > 0");
      need(v[0] < v[2], "NA must be below the immersion index N");
      if (v.size() == 5) need(v[3] > 0 && v[4] >= 0, "N_SAMPLE must be > 0 and DEPTH >= 0");
      break;
    case PsfKind::Confocal:
      need(v[0] > 0 && v[1] > 0 && v[2] > 0 && v[3] > 0, "NA, wavelengths and N must be > 0");
      need(v[0] < v[3], "NA must be below the immersion index N");
      need(v[4] >= 0, "PINHOLE_AU must be >= 0");
      break;
    case PsfKind::LightSheet:
      for (double x : v) need(x > 0, "every parameter must be > 0");
      need(v[0] < v.back() && v[1] < v.back(), "the NAs must be below the immersion index N");
      break;
    case PsfKind::File: break;
  }
  return spec;
}

PsfUnits parse_psf_units(const std::string& text) {
  const std::string t = lower(text);
  if (t == "px" || t == "pixel" || t == "pixels") return PsfUnits::Pixels;
  if (t == "um" || t == "micron" || t == "microns") return PsfUnits::Microns;
  fail("unknown PSF units '", text, "' (accepted: px, um)");
}

std::string describe_psf(const PsfSpec& spec, PsfUnits units) {
  std::ostringstream os;
  const auto& v = spec.values;
  switch (spec.kind) {
    case PsfKind::Gaussian: {
      const char* u = units == PsfUnits::Pixels ? " px" : " um";
      os << "gaussian sigma_xy=" << v[0] << u << " sigma_z=" << v[1] << u;
      break;
    }
    case PsfKind::Widefield:
      os << "widefield NA=" << v[0] << " lambda=" << v[1] << " um n=" << v[2];
      if (v.size() == 5) os << " n_sample=" << v[3] << " depth=" << v[4] << " um";
      break;
    case PsfKind::Confocal:
      os << "confocal NA=" << v[0] << " lambda_ex=" << v[1] << " um lambda_em=" << v[2] << " um n=" << v[3]
         << " pinhole=" << v[4] << " AU";
      break;
    case PsfKind::LightSheet:
      os << "lightsheet NA_det=" << v[0] << " NA_ill=" << v[1];
      if (v.size() == 4)
        os << " lambda=" << v[2] << " um n=" << v[3];
      else
        os << " lambda_ex=" << v[2] << " um lambda_em=" << v[3] << " um n=" << v[4];
      break;
    case PsfKind::File: os << "file " << spec.path; break;
  }
  return os.str();
}

PsfGrid auto_psf_grid(const PsfSpec& spec, const VoxelSize& voxel, const PsfBuildContext& ctx) {
  PsfGrid g;
  g.voxel = voxel;
  if (ctx.size > 0) {
    ISONET_CHECK(ctx.size % 2 == 1, "PSF size must be odd (a centre voxel), got ", ctx.size);
    g.nz = g.ny = g.nx = ctx.size;
    return g;
  }
  switch (spec.kind) {
    case PsfKind::Gaussian: {
      double sxy, sz;
      gaussian_sigmas_px(spec, ctx.units, voxel, sxy, sz);
      g.ny = g.nx = odd_size(4 * sxy);
      g.nz = odd_size(4 * sz);
      break;
    }
    case PsfKind::File: {
      // The bead's physical extent, on the target grid.
      const TiffInfo info = read_tiff_info(spec.path);
      VoxelSize src = info.voxel;
      if (!ctx.file_voxel.empty()) src = {ctx.file_voxel[0], ctx.file_voxel[1], ctx.file_voxel[2], voxel.unit};
      else if (!(info.has_z_spacing && info.has_xy_size)) src = ctx.data_acquired_voxel;
      auto fit = [](int n, double src_d, double dst_d) {
        int m = int(std::floor(n * src_d / dst_d));
        if (m % 2 == 0) --m;
        return std::clamp(m, 1, kMaxAutoSize);
      };
      g.nz = fit(info.nz, src.z, voxel.z);
      g.ny = fit(info.ny, src.y, voxel.y);
      g.nx = fit(info.nx, src.x, voxel.x);
      break;
    }
    default: {
      require_microns(spec, voxel);
      double fxy, fz;
      optical_extent(spec, fxy, fz);
      g.ny = odd_size(2.5 * fxy / voxel.y);
      g.nx = odd_size(2.5 * fxy / voxel.x);
      g.nz = odd_size(2.0 * fz / voxel.z);
      break;
    }
  }
  return g;
}

Volume build_psf(const PsfSpec& spec, const VoxelSize& voxel, const PsfBuildContext& ctx, std::ostream& log) {
  ISONET_CHECK(voxel.z > 0 && voxel.y > 0 && voxel.x > 0, "PSF grid: voxel sizes must be > 0, got ",
               describe_voxel(voxel));
  if (spec.kind == PsfKind::File) require_file(spec.path, "PSF");
  const PsfGrid grid = auto_psf_grid(spec, voxel, ctx);
  const auto& v = spec.values;
  switch (spec.kind) {
    case PsfKind::Gaussian: {
      double sxy, sz;
      gaussian_sigmas_px(spec, ctx.units, voxel, sxy, sz);
      return gaussian_psf(grid, sxy, sz);
    }
    case PsfKind::Widefield: {
      require_microns(spec, voxel);
      WidefieldParams p;
      p.na = v[0];
      p.wavelength_um = v[1];
      p.n_immersion = v[2];
      if (v.size() == 5) {
        p.n_sample = v[3];
        p.depth_um = v[4];
      }
      return widefield_psf(grid, p);
    }
    case PsfKind::Confocal: {
      require_microns(spec, voxel);
      ConfocalParams p;
      p.na = v[0];
      p.wavelength_ex_um = v[1];
      p.wavelength_em_um = v[2];
      p.n_immersion = v[3];
      p.pinhole_au = v[4];
      return confocal_psf(grid, p);
    }
    case PsfKind::LightSheet: {
      require_microns(spec, voxel);
      LightSheetParams p;
      p.na_detect = v[0];
      p.na_illum = v[1];
      p.wavelength_ex_um = v[2];
      p.wavelength_em_um = v.size() == 4 ? v[2] : v[3];
      p.n_immersion = v.back();
      return lightsheet_psf(grid, p);
    }
    case PsfKind::File: {
      TiffInfo info;
      Volume bead = read_tiff(spec.path, &info);
      ISONET_CHECK(bead.nz >= 2, "PSF '", spec.path, "' has shape ", bead.shape_str(),
                   ": a 3D bead volume (Z,Y,X) is needed");
      const VoxelSize src = measured_voxel(spec, voxel, ctx, info, log);
      if (!(nearly_equal(src.z, voxel.z) && nearly_equal(src.y, voxel.y) && nearly_equal(src.x, voxel.x)))
        log << "PSF '" << spec.path << "': resampling from voxel " << describe_voxel(src) << " to "
            << describe_voxel(voxel) << " (grid " << grid.nz << "x" << grid.ny << "x" << grid.nx << ")\n";
      MeasuredPsfOptions opt;
      opt.source_dz_um = src.z;
      opt.source_dy_um = src.y;
      opt.source_dx_um = src.x;
      bead.voxel = src;
      MeasuredPsfInfo found;
      Volume psf = measured_psf(bead, grid, opt, &found);
      log << "PSF '" << spec.path << "': background " << found.background
          << " subtracted (median of the border voxels; border noise " << found.noise << "), bead peak "
          << found.peak << " at (z,y,x)=(" << found.peak_z << "," << found.peak_y << "," << found.peak_x << ")\n";
      return psf;
    }
  }
  fail("unreachable PSF kind");
}

Volume isotropic_psf_3d(const Volume& psf) {
  ISONET_CHECK(psf.nz >= 1 && psf.ny >= 1 && psf.nx >= 1 && psf.nx % 2 == 1, "isotropic_psf_3d: PSF ", psf.shape_str(),
               " must have an odd x size (centred)");
  const int cz = psf.nz / 2, cy = psf.ny / 2, cx = psf.nx / 2;
  const VoxelSize& vs = psf.voxel;
  // Lateral profile along x from the centre, averaged over +x and -x (symmetric in r).
  std::vector<double> profile(size_t(cx) + 1);
  for (int i = 0; i <= cx; ++i) profile[size_t(i)] = 0.5 * (psf.at(cz, cy, cx + i) + psf.at(cz, cy, cx - i));
  // The profile at integer radius i, mirrored at 0 (an even function), 0 beyond the grid.
  auto at = [&](int i) {
    i = std::abs(i);
    return i <= cx ? profile[size_t(i)] : 0.0;
  };
  // Keys cubic (a = -0.5) between integer radii: third-order accurate, so a Gaussian's curvature
  // between samples is followed (linear interpolation is off by up to peak / (8 sigma^2)).
  auto keys = [](double t) {
    t = std::fabs(t);
    if (t < 1) return (1.5 * t - 2.5) * t * t + 1;
    if (t < 2) return ((-0.5 * t + 2.5) * t - 4) * t + 2;
    return 0.0;
  };
  Volume out(psf.nz, psf.ny, psf.nx);
  out.voxel = psf.voxel;
  for (int z = 0; z < psf.nz; ++z)
    for (int y = 0; y < psf.ny; ++y)
      for (int x = 0; x < psf.nx; ++x) {
        const double dz = (z - cz) * vs.z, dy = (y - cy) * vs.y, dx = (x - cx) * vs.x;
        const double r = std::sqrt(dz * dz + dy * dy + dx * dx) / vs.x;  // in lateral pixels
        double val = 0;
        if (r <= cx) {
          const int i = int(std::floor(r));
          for (int k = i - 1; k <= i + 2; ++k) val += at(k) * keys(r - k);
        }
        out.at(z, y, x) = float(std::max(val, 0.0));
      }
  normalize_sum(out, "isotropic 3D PSF");
  return out;
}

}  // namespace isonet::app
