// subsampling.cpp: the axial subsampling factor and its exact report (see subsampling.h).
#include "apps/subsampling.h"

#include <cmath>

#include "apps/common.h"
#include "kernels/error.h"

namespace isonet::app {
namespace {

// The factor with at least 6 decimals and as many more as it needs to read back exactly.
std::string fixed6(double v) { return format_exact(v, 6); }

}  // namespace

void check_subsampling(double factor, const std::string& where) {
  ISONET_CHECK(std::isfinite(factor) && factor > 0, "subsampling factor S from ", where, " is not a positive number (",
               factor, ")");
  ISONET_CHECK(factor >= 1.0, "subsampling factor S = ", format_exact(factor), " (from ", where,
               ") is below 1: the z step is finer than the lateral pixel size, so there is no axial "
               "undersampling to restore (isonet needs S >= 1; check the voxel size or --subsample)");
}

SubsamplingFactor determine_subsampling(const TiffInfo& info, double given, const std::vector<double>& voxel_override,
                                        const std::string& path) {
  SubsamplingFactor s;
  double z = 0, x = 0;
  bool have_ratio = false;
  std::string ratio_source;
  if (voxel_override.size() == 3) {
    z = voxel_override[0];
    x = voxel_override[2];
    have_ratio = true;
    ratio_source = "--voxel";
  } else if (info.has_z_spacing) {
    z = info.voxel.z;
    x = info.voxel.x;
    have_ratio = true;
    ratio_source = "TIFF voxel size";
  }
  if (given > 0) {
    check_subsampling(given, "--subsample");
    s.factor = given;
    s.source = "--subsample";
    s.message = "subsampling factor S = " + fixed6(given) + " (from --subsample)";
    if (have_ratio && x > 0 && !nearly_equal(z / x, given, 1e-2))
      s.warning = "warning: --subsample " + format_exact(given) + " differs from the voxel size ratio " +
                  format_exact(z) + "/" + format_exact(x) + " = " + fixed6(z / x) + " (" + ratio_source +
                  "); using --subsample as given";
    return s;
  }
  if (given != 0) check_subsampling(given, "--subsample");
  ISONET_CHECK(have_ratio, "'", path,
               "' states no z spacing (no ImageJ spacing=, OME PhysicalSizeZ or BoundingBox in its metadata), so ",
               "the subsampling factor is unknown: give --subsample S (z step / lateral pixel size) or --voxel Z,Y,X");
  ISONET_CHECK(x > 0 && z > 0, "voxel size of '", path, "' is not positive (z ", z, ", x ", x, ")");
  const double factor = z / x;
  check_subsampling(factor, ratio_source + " " + format_exact(z) + "/" + format_exact(x));
  s.factor = factor;
  s.source = ratio_source;
  s.message = "subsampling factor S = " + format_exact(z) + "/" + format_exact(x) + " = " + fixed6(factor) + " (from " +
              ratio_source + ")";
  if (ratio_source == "TIFF voxel size" && !info.has_xy_size)
    s.warning = "note: '" + path + "' states no lateral pixel size; it is taken as 1 " + info.voxel.unit;
  return s;
}

}  // namespace isonet::app
