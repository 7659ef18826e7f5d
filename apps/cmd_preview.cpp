// cmd_preview.cpp: orthogonal-view previews (see cmd_preview.h).
#include "apps/cmd_preview.h"

#include <algorithm>
#include <cmath>
#include <ostream>

#include "apps/common.h"
#include "kernels/error.h"

namespace isonet::app {
namespace {

// Display rows of an axial view [nz, w]: row j shows physical z = j * voxel.x (linear
// interpolation between planes, acquired plane k at k * voxel.z); rows past the last plane are
// not shown.
Volume axial_display(const Volume& slice, double dz, double dx) {
  const double step = dx / dz;  // input planes per display row
  const int rows = std::max(1, int(std::floor((slice.ny - 1) / step + 1e-9)) + 1);
  Volume out(1, rows, slice.nx);
  for (int j = 0; j < rows; ++j) {
    const double pos = j * step;
    const int k = std::min(int(std::floor(pos + 1e-9)), slice.ny - 1);
    const int k1 = std::min(k + 1, slice.ny - 1);
    const float t = float(pos - k);
    for (int x = 0; x < slice.nx; ++x)
      out.at(0, j, x) = (1.f - t) * slice.at(0, k, x) + t * slice.at(0, k1, x);
  }
  return out;
}

}  // namespace

Gray8 render_preview(const std::vector<const Volume*>& volumes) {
  ISONET_CHECK(!volumes.empty(), "preview: no volume given");
  const Volume& first = *volumes.front();
  double depth = INFINITY;  // the shallowest volume's physical z extent
  for (const Volume* v : volumes) {
    ISONET_CHECK(v->ny == first.ny && v->nx == first.nx, "preview: volumes differ laterally: ", first.shape_str(), " and ",
                 v->shape_str(), " (each row must show the same field)");
    ISONET_CHECK(v->voxel.z > 0 && v->voxel.x > 0, "preview: voxel sizes must be > 0");
    depth = std::min(depth, (v->nz - 1) * v->voxel.z);
  }
  std::vector<Gray8> panels;
  for (const Volume* vp : volumes) {
    const Volume& v = *vp;
    const IntensityRange range = percentile_range(v, 0.5, 99.8);
    const int z = std::clamp(int(std::lround(0.5 * depth / v.voxel.z)), 0, v.nz - 1);
    panels.push_back(to_gray8(slice_xy(v, z), range));
    panels.push_back(to_gray8(axial_display(slice_xz(v, v.ny / 2), v.voxel.z, v.voxel.x), range));
    panels.push_back(to_gray8(axial_display(slice_yz(v, v.nx / 2), v.voxel.z, v.voxel.x), range));
  }
  return compose_grid(panels, 3, 4, 255);
}

void write_preview(const std::string& path, const std::vector<const Volume*>& volumes) {
  write_png(path, render_preview(volumes));
}

void run_preview(const PreviewOptions& opt) {
  std::ostream& out = report_stream(opt.quiet);
  ISONET_CHECK(!opt.out.empty(), "preview: --out is required");
  std::vector<Volume> vols;
  std::vector<std::string> names;
  vols.push_back(read_volume(opt.input, "input", nullptr, 1, opt.select));
  names.push_back(opt.input);
  if (!opt.restored.empty()) {
    vols.push_back(read_volume(opt.restored, "restored", nullptr, 1, {}, /*selectable=*/false));
    names.push_back(opt.restored);
  }
  if (!opt.gt.empty()) {
    vols.push_back(read_volume(opt.gt, "ground truth", nullptr, 1, {}, /*selectable=*/false));
    names.push_back(opt.gt);
  }
  std::vector<const Volume*> ptrs;
  for (const auto& v : vols) ptrs.push_back(&v);
  write_preview(opt.out, ptrs);
  out << "preview: wrote " << opt.out << " (rows:";
  for (const auto& n : names) out << " " << n;
  out << "; columns: xy, xz, yz at physical aspect)\n";
}

}  // namespace isonet::app
