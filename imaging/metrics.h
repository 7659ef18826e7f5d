// metrics.h: image-quality scores of a prediction against a reference volume: PSNR and 3D SSIM,
// reported by default after the least-squares affine fit of the prediction to the reference
// (CSBDeep's normalize_minmse), so that a global gain/offset difference is not scored.
//
// Conventions (used wherever the project prints a score):
//  - data range L = max(reference) - min(reference) (the reference only, never the prediction).
//  - PSNR = 10 log10(L^2 / MSE), in dB; +inf when MSE == 0.
//  - SSIM (Wang et al. 2004) in 3D: Gaussian window sigma 1.5 voxels truncated at radius 5 (an
//    11-tap window per axis, as scikit-image's gaussian_weights=True uses: truncate 3.5), local
//    statistics with population (not sample) covariance, C1 = (0.01 L)^2, C2 = (0.03 L)^2.
//    Borders: the filter reflects at the edges (half-sample symmetric, scipy.ndimage 'reflect'),
//    and the mean SSIM is taken over voxels at least 5 voxels from every border along each axis
//    longer than 10 voxels (skimage's crop); along shorter axes nothing is cropped. A 2D image
//    (nz == 1) gets plain 2D SSIM this way.
//  - affine fit: a, b minimizing sum((a*pred + b - ref)^2): a = cov(pred, ref) / var(pred),
//    b = mean(ref) - a*mean(pred); a constant prediction gets a = 0, b = mean(ref).
// All sums are accumulated in double.
#pragma once
#include "imaging/volume.h"

namespace isonet {

// Whether a score is computed after the affine least-squares fit (the default) or as is.
enum class ScoreFit { Affine, None };

struct AffineFit {
  double scale = 1.0, offset = 0.0;  // fitted prediction = scale * pred + offset
};

// Least-squares a, b of a*pred + b ~ ref. Shapes must match (error names both shapes).
AffineFit fit_affine_minmse(const Volume& pred, const Volume& ref);

// pred mapped by fit_affine_minmse(pred, ref) (voxel size copied from pred).
Volume normalize_minmse(const Volume& pred, const Volume& ref);

// max(ref) - min(ref); the error says so when it is 0 (a constant reference cannot be scored).
double data_range(const Volume& ref);

double mse(const Volume& pred, const Volume& ref);
double psnr(const Volume& pred, const Volume& ref, ScoreFit fit = ScoreFit::Affine);
double ssim(const Volume& pred, const Volume& ref, ScoreFit fit = ScoreFit::Affine);

struct Scores {
  double psnr = 0, ssim = 0;
  AffineFit fit;            // identity when fitted == false
  bool fitted = true;       // scores are after the affine fit
};

// Both scores with one fit (what reports print).
Scores score(const Volume& pred, const Volume& ref, ScoreFit fit = ScoreFit::Affine);

}  // namespace isonet
