// normalize.h: percentile normalization of intensities, as CSBDeep's normalize(x, 2, 99.8):
//   x' = (x - p_lo) / (p_hi - p_lo + eps),   undone by   x = x' * (p_hi - p_lo + eps) + p_lo,
// no clipping by default. The parameters are returned so that the app can store them (the model
// file records those of the training data) and undo the normalization after prediction.
//
// Percentiles follow numpy's default ("linear"): q-th percentile = value at fractional rank
// q/100*(n-1) of the sorted data, interpolated linearly between the two neighbouring order
// statistics. They are exact (std::nth_element on a copy) up to `max_exact` values; above that
// they are estimated on a deterministic pseudo-random sample (with replacement, keyed on `seed`)
// of `max_exact` values: the rank error is then about sqrt(q(1-q)/m), i.e. < 1e-4 of the rank
// range for m = 2^24, far below what matters for a normalization.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "imaging/volume.h"

namespace isonet {

struct NormalizeParams {
  double low_percent = 2.0, high_percent = 99.8;  // which percentiles (recorded for the model file)
  float p_lo = 0.f, p_hi = 1.f;                    // their values in input units
  float eps = 1e-20f;                               // CSBDeep's default; guards p_hi == p_lo
  bool clip = false;                                // clip x' to [0, 1] after normalizing

  double scale() const { return double(p_hi) - double(p_lo) + double(eps); }
  // Identity parameters (p_lo 0, p_hi 1, eps 0): normalize and denormalize do nothing.
  static NormalizeParams identity();
};

struct PercentileOptions {
  size_t max_exact = size_t(1) << 24;  // above this many values, estimate on a sample of this size
  uint64_t seed = 0x5eed;              // key of the sample (deterministic)
};

// q-th percentile (0 <= q <= 100) of data[0..n). Throws isonet::Error on n == 0, q out of range,
// or a non-finite value in the data.
double percentile(const float* data, size_t n, double q, const PercentileOptions& opt = {});

// Nearest-rank q-th percentile (0 <= q <= 100) of `values`: the element of rank
// round(q/100 * (n-1)). Reorders `values` (a selection, no full sort); n must be > 0. For display
// ranges and background levels, where numpy's interpolation above is not needed.
float percentile_nearest_rank(std::vector<float>& values, double q);

// Both percentiles of a volume in one pass (one copy, two selections).
NormalizeParams percentile_params(const Volume& v, double low_percent = 2.0, double high_percent = 99.8,
                                  float eps = 1e-20f, bool clip = false, const PercentileOptions& opt = {});
// Same for a raw array of n values.
NormalizeParams percentile_params(const float* data, size_t n, double low_percent = 2.0, double high_percent = 99.8,
                                  float eps = 1e-20f, bool clip = false, const PercentileOptions& opt = {});

// In place, n values: x' = (x - p_lo)/scale (then clipped to [0,1] if p.clip).
void normalize_inplace(float* data, size_t n, const NormalizeParams& p);
// In place, n values: x = x' * scale + p_lo (clipping, if any, is not undone).
void denormalize_inplace(float* data, size_t n, const NormalizeParams& p);

void normalize_inplace(Volume& v, const NormalizeParams& p);
void denormalize_inplace(Volume& v, const NormalizeParams& p);

// Convenience: computes the parameters of v, returns the normalized copy and the parameters.
Volume normalize_percentile(const Volume& v, NormalizeParams* params_out, double low_percent = 2.0,
                            double high_percent = 99.8, float eps = 1e-20f, bool clip = false);

}  // namespace isonet
