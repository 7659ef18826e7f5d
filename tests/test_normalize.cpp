// test_normalize.cpp: percentiles (exact and sampled), percentile normalization and its undo.
#include "imaging/normalize.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kernels/error.h"
#include "test_util.h"

using namespace isonet;

namespace {

// numpy's default ("linear") percentile, by full sort in double: the reference.
double ref_percentile(std::vector<float> v, double q) {
  std::sort(v.begin(), v.end());
  double r = q / 100.0 * double(v.size() - 1);
  size_t k = size_t(std::floor(r));
  if (k + 1 >= v.size()) return v.back();
  return v[k] + (r - double(k)) * (double(v[k + 1]) - double(v[k]));
}

}  // namespace

TEST_CASE("normalize: percentiles of a shuffled 0..100 are the percent values themselves") {
  std::vector<float> v(101);
  std::iota(v.begin(), v.end(), 0.f);
  std::shuffle(v.begin(), v.end(), std::mt19937(7));
  // rank q/100*(n-1) = q: exactly q (interpolated between q's neighbours for fractional q).
  CHECK(percentile(v.data(), v.size(), 2.0) == doctest::Approx(2.0).epsilon(1e-12));
  CHECK(percentile(v.data(), v.size(), 99.8) == doctest::Approx(99.8).epsilon(1e-12));
  CHECK(percentile(v.data(), v.size(), 0.0) == 0.0);
  CHECK(percentile(v.data(), v.size(), 100.0) == 100.0);
  NormalizeParams p = percentile_params(v.data(), v.size());
  CHECK(p.p_lo == doctest::Approx(2.0));
  CHECK(p.p_hi == doctest::Approx(99.8));
}

TEST_CASE("normalize: exact percentiles match a full sort on random data of odd size") {
  std::vector<float> v = test::random_vector(10007, 11, -3.f, 50.f);
  for (double q : {0.0, 0.5, 2.0, 33.3, 50.0, 99.8, 99.99, 100.0}) {
    double ref = ref_percentile(v, q);
    // The selection returns the same order statistics as the sort; only the interpolation
    // product differs in rounding: 1e-9 relative.
    CHECK(percentile(v.data(), v.size(), q) == doctest::Approx(ref).epsilon(1e-9));
  }
}

TEST_CASE("normalize: sampled percentiles are close and deterministic") {
  std::vector<float> v = test::random_vector(200001, 12, 0.f, 1.f);  // uniform: percentile q ~ q/100
  PercentileOptions opt;
  opt.max_exact = 4096;
  for (double q : {2.0, 50.0, 99.8}) {
    double a = percentile(v.data(), v.size(), q, opt);
    double b = percentile(v.data(), v.size(), q, opt);
    CHECK(a == b);  // same key, same sample
    // Rank standard error sqrt(q(1-q)/m) <= 0.5/64 = 0.0078 for m=4096: allow 4 sigma.
    CHECK(std::fabs(a - ref_percentile(v, q)) < 0.032);
  }
  opt.seed = 99;
  CHECK(percentile(v.data(), v.size(), 50.0, opt) != percentile(v.data(), v.size(), 50.0, PercentileOptions{4096}));
}

TEST_CASE("normalize: maps the percentiles to 0 and 1, and denormalize restores the input") {
  Volume v(5, 7, 9);
  v.data = test::random_vector(v.size(), 13, 100.f, 4000.f);  // camera-like offset and range
  NormalizeParams p;
  Volume n = normalize_percentile(v, &p);
  CHECK(p.low_percent == 2.0);
  CHECK(p.high_percent == 99.8);
  CHECK_FALSE(p.clip);
  double lo = ref_percentile(v.data, 2.0), hi = ref_percentile(v.data, 99.8);
  CHECK(p.p_lo == doctest::Approx(lo).epsilon(1e-6));
  CHECK(p.p_hi == doctest::Approx(hi).epsilon(1e-6));
  // No clipping by default: values outside the percentiles leave [0, 1].
  auto mm = std::minmax_element(n.data.begin(), n.data.end());
  CHECK(*mm.first < 0.f);
  CHECK(*mm.second > 1.f);
  for (size_t i = 0; i < v.size(); ++i) {
    double expect = (double(v.data[i]) - p.p_lo) / (double(p.p_hi) - p.p_lo + p.eps);
    // fp32 subtract and multiply by the fp32 inverse scale: ~3 ulp of values ~1.
    REQUIRE(std::fabs(n.data[i] - expect) < 1e-6);
  }
  Volume back = n;
  denormalize_inplace(back, p);
  // Round trip in fp32 through values ~1 scaled by ~4000: a few ulp of 4000 (2.4e-4 each).
  CHECK_CLOSE_ARRAYS("denormalize(normalize(x))", v.data.data(), back.data.data(), v.size(), 2e-3, 1e-6);
}

TEST_CASE("normalize: clip option, constant images and identity parameters") {
  std::vector<float> v = test::random_vector(999, 14, -1.f, 1.f);
  NormalizeParams p = percentile_params(v.data(), v.size(), 10.0, 90.0, 1e-20f, true);
  std::vector<float> n = v;
  normalize_inplace(n.data(), n.size(), p);
  CHECK(*std::min_element(n.begin(), n.end()) == 0.f);
  CHECK(*std::max_element(n.begin(), n.end()) == 1.f);

  Volume c(3, 3, 3, 7.f);
  NormalizeParams pc;
  Volume nc = normalize_percentile(c, &pc);
  for (float x : nc.data) REQUIRE(x == 0.f);  // eps keeps it finite: (7-7)/1e-20

  NormalizeParams id = NormalizeParams::identity();
  std::vector<float> w = v;
  normalize_inplace(w.data(), w.size(), id);
  CHECK(w == v);
  denormalize_inplace(w.data(), w.size(), id);
  CHECK(w == v);
}

TEST_CASE("normalize: bad input is refused with a message") {
  std::vector<float> v = {1.f, 2.f, std::nanf(""), 4.f};
  CHECK_THROWS_WITH_AS(percentile(v.data(), v.size(), 50.0), doctest::Contains("non-finite"), Error);
  v[2] = 3.f;
  CHECK_THROWS_AS(percentile(v.data(), 0, 50.0), Error);
  CHECK_THROWS_AS(percentile(v.data(), v.size(), 101.0), Error);
  CHECK_THROWS_WITH_AS(percentile_params(v.data(), v.size(), 99.0, 2.0), doctest::Contains("below"), Error);
  NormalizeParams bad;
  bad.p_lo = 1.f;
  bad.p_hi = 0.f;
  bad.eps = 0.f;
  CHECK_THROWS_AS(normalize_inplace(v.data(), v.size(), bad), Error);
}
