// cmd_eval.cpp: `isonet eval` (see cmd_eval.h).
#include "apps/cmd_eval.h"

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <iostream>

#include "apps/common.h"
#include "kernels/error.h"

namespace isonet::app {
namespace {

// The first `nz` planes of v.
Volume first_planes(const Volume& v, int nz) {
  Volume out(nz, v.ny, v.nx);
  out.voxel = v.voxel;
  std::copy(v.data.begin(), v.data.begin() + std::ptrdiff_t(size_t(nz) * v.plane()), out.data.begin());
  return out;
}

bool physical(const VoxelSize& v) { return v.unit != "px"; }

}  // namespace

EvalResult evaluate(const Volume& pred, const Volume& gt, bool fit, std::ostream& out) {
  ISONET_CHECK(pred.ny == gt.ny && pred.nx == gt.nx, "eval: prediction ", pred.shape_str(), " and ground truth ",
               gt.shape_str(), " differ laterally (Y, X): they cannot be compared");
  EvalResult r;
  if (pred.nz != gt.nz) {
    // Only a plane count difference from the z geometry is accepted: same z spacing.
    const bool same_spacing = !physical(pred.voxel) || !physical(gt.voxel) || nearly_equal(pred.voxel.z, gt.voxel.z, 1e-2);
    ISONET_CHECK(same_spacing, "eval: prediction ", pred.shape_str(), " (z spacing ", pred.voxel.z, " ", pred.voxel.unit,
                 ") and ground truth ", gt.shape_str(), " (z spacing ", gt.voxel.z, " ", gt.voxel.unit,
                 ") are sampled differently along z: restore or upsample the prediction to the ground truth's grid first");
    r.planes = std::min(pred.nz, gt.nz);
    r.cropped = true;
    out << "eval: note: prediction has " << pred.nz << " planes, ground truth " << gt.nz
        << " (z geometry: a restored volume has ceil(Z_acquired*S) planes, acquired plane k at k*S); comparing the "
        << "first " << r.planes << " planes of both\n";
  } else {
    r.planes = pred.nz;
  }
  const Volume p = r.cropped ? first_planes(pred, r.planes) : Volume();
  const Volume g = r.cropped ? first_planes(gt, r.planes) : Volume();
  r.scores = score(r.cropped ? p : pred, r.cropped ? g : gt, fit ? ScoreFit::Affine : ScoreFit::None);
  return r;
}

EvalResult run_eval(const EvalOptions& opt) {
  std::ostream& out = report_stream(opt.quiet);
  const Volume pred = read_volume(opt.pred, "prediction", nullptr, 1, {}, /*selectable=*/false);
  const Volume gt = read_volume(opt.gt, "ground truth", nullptr, 1, {}, /*selectable=*/false);
  EvalResult r = evaluate(pred, gt, !opt.no_fit, out);
  char line[256];
  std::snprintf(line, sizeof line, "PSNR %.3f dB   SSIM %.4f\n", r.scores.psnr, r.scores.ssim);
  out << line;
  if (r.scores.fitted) {
    std::snprintf(line, sizeof line, "pred' = %.6g * pred + %.6g", r.scores.fit.scale, r.scores.fit.offset);
    out << "(scored after the least-squares affine fit of the prediction to the ground truth, as CSBDeep's "
        << "normalize_minmse: " << line << "; data range = max - min of the ground truth)\n";
  } else {
    out << "(scored as is, without the affine fit; data range = max - min of the ground truth)\n";
  }
  return r;
}

}  // namespace isonet::app
