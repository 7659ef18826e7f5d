// normalize.cpp: implementation of normalize.h.
#include "imaging/normalize.h"

#include <algorithm>
#include <cmath>
#include <sstream>
#include <vector>

#include "kernels/error.h"
#include "kernels/log.h"
#include "kernels/rng.h"

namespace isonet {

namespace {

void check_percent(double q, const char* what) {
  ISONET_CHECK(std::isfinite(q) && q >= 0.0 && q <= 100.0, what, ": percentile must be in [0, 100], got ", q);
}

// The values percentiles are taken of: a copy of all n values, or a keyed sample of max_exact of
// them. Non-finite values are refused with their index.
std::vector<float> selection_copy(const float* data, size_t n, const PercentileOptions& opt) {
  ISONET_CHECK(n > 0, "percentile: no data");
  ISONET_CHECK(opt.max_exact > 0, "percentile: max_exact must be positive");
  for (size_t i = 0; i < n; ++i)
    if (!std::isfinite(data[i])) fail("percentile: non-finite value ", data[i], " at index ", i, " of ", n);
  if (n <= opt.max_exact) return std::vector<float>(data, data + n);
  std::vector<float> s(opt.max_exact);
  for (size_t i = 0; i < s.size(); ++i) {
    uint64_t r = mix64(mix64(opt.seed) ^ i);
    s[i] = data[r % n];  // modulo bias ~ n/2^64: negligible
  }
  return s;
}

// numpy "linear" percentile of the values in v (reordered in place).
double percentile_of(std::vector<float>& v, double q) {
  double rank = q / 100.0 * double(v.size() - 1);
  size_t k = size_t(std::floor(rank));
  double frac = rank - double(k);
  std::nth_element(v.begin(), v.begin() + k, v.end());
  double lo = v[k];
  if (frac == 0.0 || k + 1 >= v.size()) return lo;
  double hi = *std::min_element(v.begin() + k + 1, v.end());  // the (k+1)-th order statistic
  return lo + frac * (hi - lo);
}

}  // namespace

NormalizeParams NormalizeParams::identity() {
  NormalizeParams p;
  p.low_percent = 0.0;
  p.high_percent = 100.0;
  p.p_lo = 0.f;
  p.p_hi = 1.f;
  p.eps = 0.f;
  return p;
}

float percentile_nearest_rank(std::vector<float>& values, double q) {
  check_percent(q, "percentile_nearest_rank");
  ISONET_CHECK(!values.empty(), "percentile_nearest_rank: no data");
  const size_t k = size_t(std::llround(q / 100.0 * double(values.size() - 1)));
  std::nth_element(values.begin(), values.begin() + k, values.end());
  return values[k];
}

double percentile(const float* data, size_t n, double q, const PercentileOptions& opt) {
  check_percent(q, "percentile");
  std::vector<float> v = selection_copy(data, n, opt);
  return percentile_of(v, q);
}

NormalizeParams percentile_params(const float* data, size_t n, double low_percent, double high_percent, float eps,
                                  bool clip, const PercentileOptions& opt) {
  check_percent(low_percent, "percentile_params (low)");
  check_percent(high_percent, "percentile_params (high)");
  ISONET_CHECK(low_percent < high_percent, "percentile_params: low percentile ", low_percent,
               " must be below the high percentile ", high_percent);
  ISONET_CHECK(std::isfinite(eps) && eps >= 0.f, "percentile_params: eps must be finite and >= 0, got ", eps);
  std::vector<float> v = selection_copy(data, n, opt);
  NormalizeParams p;
  p.low_percent = low_percent;
  p.high_percent = high_percent;
  p.p_lo = float(percentile_of(v, low_percent));
  p.p_hi = float(percentile_of(v, high_percent));
  p.eps = eps;
  p.clip = clip;
  if (!(p.p_hi > p.p_lo)) {
    std::ostringstream os;
    os << "normalize: warning: percentiles " << low_percent << " and " << high_percent << " are equal (" << p.p_lo
       << "); the image is (nearly) constant and normalizes to 0 where it equals that value";
    log_info(os.str());
  }
  return p;
}

NormalizeParams percentile_params(const Volume& v, double low_percent, double high_percent, float eps, bool clip,
                                  const PercentileOptions& opt) {
  return percentile_params(v.data.data(), v.data.size(), low_percent, high_percent, eps, clip, opt);
}

void normalize_inplace(float* data, size_t n, const NormalizeParams& p) {
  double s = p.scale();
  ISONET_CHECK(s > 0.0, "normalize: scale p_hi - p_lo + eps = ", s, " must be positive (p_lo ", p.p_lo, ", p_hi ",
               p.p_hi, ", eps ", p.eps, ")");
  const float inv = float(1.0 / s), lo = p.p_lo;
  const bool clip = p.clip;
#pragma omp parallel for schedule(static) if (n > (1u << 18))
  for (long long i = 0; i < (long long)n; ++i) {
    float x = (data[i] - lo) * inv;
    data[i] = clip ? std::min(std::max(x, 0.f), 1.f) : x;
  }
}

void denormalize_inplace(float* data, size_t n, const NormalizeParams& p) {
  double s = p.scale();
  ISONET_CHECK(s > 0.0, "denormalize: scale p_hi - p_lo + eps = ", s, " must be positive");
  const float sc = float(s), lo = p.p_lo;
#pragma omp parallel for schedule(static) if (n > (1u << 18))
  for (long long i = 0; i < (long long)n; ++i) data[i] = data[i] * sc + lo;
}

void normalize_inplace(Volume& v, const NormalizeParams& p) { normalize_inplace(v.data.data(), v.data.size(), p); }
void denormalize_inplace(Volume& v, const NormalizeParams& p) { denormalize_inplace(v.data.data(), v.data.size(), p); }

Volume normalize_percentile(const Volume& v, NormalizeParams* params_out, double low_percent, double high_percent,
                            float eps, bool clip) {
  NormalizeParams p = percentile_params(v, low_percent, high_percent, eps, clip);
  Volume out = v;
  normalize_inplace(out, p);
  if (params_out) *params_out = p;
  return out;
}

}  // namespace isonet
