// cmd_eval.h: `isonet eval`: PSNR and SSIM of a prediction against a ground truth, after the
// least-squares affine fit of the prediction (CSBDeep's normalize_minmse; imaging/metrics.h).
// Volumes whose plane counts differ only through the z geometry (a restored volume has
// ceil(Z_acquired * S) planes, the ground truth its own count; DESIGN.md section 5) are compared
// on their common planes, and that is said; other shape or voxel-size differences are errors.
#pragma once
#include <iosfwd>
#include <string>

#include "imaging/metrics.h"
#include "imaging/volume.h"

namespace isonet::app {

struct EvalOptions {
  std::string pred, gt;
  bool no_fit = false;  // score as is, without the affine fit
  bool quiet = false;
};

struct EvalResult {
  Scores scores;
  int planes = 0;        // planes compared
  bool cropped = false;  // the volumes had different plane counts
};

// Scores pred against gt (see above); notes go to `out`.
EvalResult evaluate(const Volume& pred, const Volume& gt, bool fit, std::ostream& out);

EvalResult run_eval(const EvalOptions& opt);

}  // namespace isonet::app
