// test_metrics.cpp: PSNR, 3D SSIM and the least-squares affine fit (imaging/metrics.h): exact
// cases, an analytic PSNR, SSIM against a direct (non-separable) window implementation written
// here, and against numpy/scipy (scripts/metrics_reference.py) when Python has them.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>

#include "imaging/metrics.h"
#include "kernels/error.h"
#include "imaging_test_util.h"
#include "test_util.h"

using namespace isonet;

namespace {

using test::random_volume;

// A smooth structured reference (SSIM on white noise alone says little).
Volume structured(int nz, int ny, int nx, uint64_t seed) {
  Volume v = random_volume(nz, ny, nx, seed, 0.f, 0.3f);
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) v.at(z, y, x) += float(std::sin(0.4 * x + 0.3 * y) * std::cos(0.5 * z) + 1.0);
  return v;
}

// Direct SSIM: for every voxel, the full 11^3 Gaussian window with reflected indices.
double direct_ssim(const Volume& x, const Volume& r) {
  auto refl = [](int i, int n) {
    if (n == 1) return 0;
    int p = 2 * n;
    i %= p;
    if (i < 0) i += p;
    return i < n ? i : p - 1 - i;
  };
  double w1[11], sum = 0;
  for (int k = -5; k <= 5; ++k) sum += w1[k + 5] = std::exp(-k * k / (2 * 1.5 * 1.5));
  for (double& w : w1) w /= sum;
  double lo = *std::min_element(r.data.begin(), r.data.end()), hi = *std::max_element(r.data.begin(), r.data.end());
  double L = hi - lo, c1 = (0.01 * L) * (0.01 * L), c2 = (0.03 * L) * (0.03 * L);
  auto crop = [](int n) { return n > 10 ? 5 : 0; };
  int rz = x.nz > 1 ? 5 : 0;
  double total = 0;
  long count = 0;
  for (int z = crop(x.nz); z < x.nz - crop(x.nz); ++z)
    for (int y = crop(x.ny); y < x.ny - crop(x.ny); ++y)
      for (int xx = crop(x.nx); xx < x.nx - crop(x.nx); ++xx) {
        double m[5] = {0, 0, 0, 0, 0};
        for (int a = -rz; a <= rz; ++a)
          for (int b = -5; b <= 5; ++b)
            for (int c = -5; c <= 5; ++c) {
              double w = (rz ? w1[a + 5] : 1.0) * w1[b + 5] * w1[c + 5];
              double p = x.at(refl(z + a, x.nz), refl(y + b, x.ny), refl(xx + c, x.nx));
              double q = r.at(refl(z + a, x.nz), refl(y + b, x.ny), refl(xx + c, x.nx));
              m[0] += w * p;
              m[1] += w * q;
              m[2] += w * p * p;
              m[3] += w * q * q;
              m[4] += w * p * q;
            }
        double vx = m[2] - m[0] * m[0], vy = m[3] - m[1] * m[1], cxy = m[4] - m[0] * m[1];
        total += (2 * m[0] * m[1] + c1) * (2 * cxy + c2) / ((m[0] * m[0] + m[1] * m[1] + c1) * (vx + vy + c2));
        ++count;
      }
  return total / count;
}


}  // namespace

TEST_CASE("metrics: identical volumes give PSNR +inf and SSIM 1, with and without the fit") {
  Volume r = structured(7, 12, 13, 1);
  for (ScoreFit fit : {ScoreFit::None, ScoreFit::Affine}) {
    CHECK(std::isinf(psnr(r, r, fit)));
    // SSIM of x with itself is exactly 1 per voxel up to rounding of the sums: 1e-12.
    CHECK(std::fabs(ssim(r, r, fit) - 1.0) <= 1e-12);
  }
}

TEST_CASE("metrics: the affine fit removes a gain and an offset exactly") {
  Volume r = structured(6, 15, 11, 2);
  Volume p = r;
  for (float& x : p.data) x = 0.37f * x + 120.f;  // prediction on another scale
  AffineFit f = fit_affine_minmse(p, r);
  // Exact inverse is 1/0.37 and -120/0.37; float rounding of p (values ~120, ulp 7.6e-6)
  // perturbs the fit at the 1e-5 relative level.
  CHECK(std::fabs(f.scale - 1.0 / 0.37) <= 1e-4 * (1.0 / 0.37));
  CHECK(std::fabs(f.offset + 120.0 / 0.37) <= 1e-4 * (120.0 / 0.37));
  Volume n = normalize_minmse(p, r);
  CHECK_CLOSE_ARRAYS("normalized prediction", r.data.data(), n.data.data(), r.size(), 1e-4, 0.0);
  // After the fit the scores are those of an (almost) perfect prediction; without it, poor.
  Scores s = score(p, r);
  CHECK(s.fitted);
  CHECK(s.psnr > 90.0);  // MSE ~ (1e-5)^2 relative to a range ~2.3
  CHECK(s.ssim > 0.999999);
  CHECK(psnr(p, r, ScoreFit::None) < 0.0);
  CHECK(ssim(p, r, ScoreFit::None) < 0.05);  // luminance term ~ 2*1*120/(1+120^2): near 0
  // The fit minimizes MSE: nudging it either way is worse.
  auto mse_with = [&](double a, double b) {
    double s2 = 0;
    for (size_t i = 0; i < r.size(); ++i) s2 += std::pow(a * p.data[i] + b - r.data[i], 2);
    return s2;
  };
  double best = mse_with(f.scale, f.offset);
  CHECK(best <= mse_with(f.scale * (1 + 1e-6), f.offset));
  CHECK(best <= mse_with(f.scale, f.offset + 1e-6));
  // A constant prediction gets scale 0 and the mean of the reference.
  Volume c(6, 15, 11, 4.f);
  AffineFit fc = fit_affine_minmse(c, r);
  CHECK(fc.scale == 0.0);
  double mean = 0;
  for (float x : r.data) mean += x;
  CHECK(std::fabs(fc.offset - mean / r.size()) <= 1e-12 * std::fabs(fc.offset));
}

TEST_CASE("metrics: analytic PSNR for a known error and the data-range convention") {
  // ref spans [lo, lo + 3]: L = 3. Error of exactly +-0.01 everywhere: MSE = 1e-4,
  // PSNR = 10 log10(9 / 1e-4) = 49.542... dB (float storage of ref+-0.01 perturbs MSE ~1e-6 rel).
  Volume r = random_volume(5, 9, 8, 3, 10.f, 13.f);
  r.data[0] = 10.f;
  r.data[1] = 13.f;
  Volume p = r;
  for (size_t i = 0; i < p.size(); ++i) p.data[i] += (i % 2 ? 0.01f : -0.01f);
  CHECK(data_range(r) == 3.0);
  CHECK(std::fabs(mse(p, r) - 1e-4) <= 1e-4 * 1e-3);
  const double want = 10 * std::log10(9.0 / 1e-4);
  CHECK(std::fabs(psnr(p, r, ScoreFit::None) - want) <= 1e-3);
  // Gaussian noise of sigma 0.05 on 100k voxels: PSNR = 10 log10(9/0.0025) within the sampling
  // error of the MSE (relative sd sqrt(2/N) = 0.0045 -> 0.02 dB; 5 sd = 0.1 dB).
  Volume big = random_volume(20, 50, 100, 4, 0.f, 3.f);
  Volume noisy = big;
  std::mt19937_64 g(5);
  std::normal_distribution<double> nd(0.0, 0.05);
  for (float& x : noisy.data) x += float(nd(g));
  double range = data_range(big);
  CHECK(std::fabs(psnr(noisy, big, ScoreFit::None) - 10 * std::log10(range * range / 0.0025)) <= 0.1);
  // The range comes from the reference only: swapping roles changes the score.
  Volume scaled = r;
  for (float& x : scaled.data) x *= 2.f;
  CHECK(psnr(r, scaled, ScoreFit::None) != psnr(scaled, r, ScoreFit::None));
}

TEST_CASE("metrics: separable block-wise SSIM equals a direct 11^3-window SSIM") {
  // Odd sizes; one axis shorter than the window (no crop, reflection wraps several times).
  struct Shape { int nz, ny, nx; };
  for (Shape s : {Shape{13, 14, 12}, Shape{4, 17, 15}, Shape{1, 23, 19}}) {
    INFO(s.nz << "x" << s.ny << "x" << s.nx);
    Volume r = structured(s.nz, s.ny, s.nx, 7);
    Volume p = r;
    std::mt19937_64 g(8);
    std::normal_distribution<double> nd(0.0, 0.2);
    for (float& x : p.data) x = 0.8f * x + float(nd(g));
    // Both sum the same double products in different orders: agreement to 1e-12.
    CHECK(std::fabs(ssim(p, r, ScoreFit::None) - direct_ssim(p, r)) <= 1e-12);
    Volume fitted = normalize_minmse(p, r);
    // ssim(Affine) fits in double, the reference here fits then rounds to float: 1e-6.
    CHECK(std::fabs(ssim(p, r) - direct_ssim(fitted, r)) <= 1e-6);
    double v = ssim(p, r, ScoreFit::None);
    CHECK(v > 0.0);
    CHECK(v < 1.0);
  }
}

TEST_CASE("metrics: PSNR and SSIM agree with numpy/scipy (and scikit-image when installed)") {
  std::string py = test::find_python("numpy, scipy.ndimage");
  if (py.empty()) {
    MESSAGE("SKIPPED: python3 with numpy and scipy not found");
    return;
  }
  test::TempDir tmp;
  const std::string& dir = tmp.path;
  Volume r = structured(15, 21, 18, 11);
  Volume p = r;
  std::mt19937_64 g(12);
  std::normal_distribution<double> nd(0.0, 0.15);
  for (float& x : p.data) x = 1.7f * x - 0.4f + float(nd(g));
  test::write_raw_floats(dir + "/p.raw", p.data);
  test::write_raw_floats(dir + "/r.raw", r.data);
  std::string cmd = py + " " + test::source_path("scripts/metrics_reference.py") + " " + dir + "/p.raw " + dir +
                    "/r.raw 15 21 18 " + dir + "/out.json";
  REQUIRE(std::system(cmd.c_str()) == 0);
  std::ifstream in(dir + "/out.json");
  nlohmann::json j = nlohmann::json::parse(in);
  AffineFit f = fit_affine_minmse(p, r);
  // Same double arithmetic in a different summation order: 1e-9 relative.
  CHECK(std::fabs(f.scale - j["scale"].get<double>()) <= 1e-9 * std::fabs(f.scale));
  CHECK(std::fabs(f.offset - j["offset"].get<double>()) <= 1e-9 * std::fabs(f.offset) + 1e-12);
  CHECK(std::fabs(psnr(p, r) - j["psnr_fit"].get<double>()) <= 1e-9);
  CHECK(std::fabs(psnr(p, r, ScoreFit::None) - j["psnr_raw"].get<double>()) <= 1e-9);
  CHECK(std::fabs(ssim(p, r) - j["ssim_fit"].get<double>()) <= 1e-9);
  CHECK(std::fabs(ssim(p, r, ScoreFit::None) - j["ssim_raw"].get<double>()) <= 1e-9);
  if (j.contains("skimage_ssim_fit")) {
    CHECK(std::fabs(ssim(p, r) - j["skimage_ssim_fit"].get<double>()) <= 1e-9);
    CHECK(std::fabs(ssim(p, r, ScoreFit::None) - j["skimage_ssim_raw"].get<double>()) <= 1e-9);
  } else {
    MESSAGE("scikit-image not installed: SSIM checked against the numpy/scipy reference only");
  }
}

TEST_CASE("metrics: bad inputs are refused with the reason") {
  Volume a(2, 3, 4, 1.f), b(2, 4, 3, 1.f);
  CHECK_THROWS_WITH_AS(psnr(a, b), doctest::Contains("differ in shape"), Error);
  CHECK_THROWS_WITH_AS(psnr(a, a), doctest::Contains("constant"), Error);
  Volume n = structured(2, 3, 4, 1);
  Volume bad = n;
  bad.data[5] = std::nanf("");
  CHECK_THROWS_WITH_AS(ssim(bad, n), doctest::Contains("non-finite"), Error);
}
