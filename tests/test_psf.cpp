// test_psf.cpp: PSF models against textbook widths (FWHM), normalization and symmetry; the
// Gibson-Lanni reduction to Born-Wolf; confocal and light-sheet compositions; measured bead
// preparation on synthetic beads with known answers and on the real bead files.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <random>

#include "imaging/psf.h"
#include "kernels/error.h"
#include "nn/safetensors.h"
#include "test_util.h"

using namespace isonet;

namespace {

PsfGrid grid(int nz, int ny, int nx, double dz, double dxy) {
  PsfGrid g;
  g.nz = nz, g.ny = ny, g.nx = nx;
  g.voxel.z = dz, g.voxel.y = dxy, g.voxel.x = dxy;
  return g;
}

double sum_of(const Volume& v) {
  double s = 0;
  for (float f : v.data) s += f;
  return s;
}

double min_of(const Volume& v) { return *std::min_element(v.data.begin(), v.data.end()); }

// Max |v(z,y,x) - v(mirrored)| over flips of each axis, relative to the maximum.
double asymmetry(const Volume& v, bool flip_z, bool flip_y, bool flip_x) {
  double m = 0, peak = *std::max_element(v.data.begin(), v.data.end());
  for (int z = 0; z < v.nz; ++z)
    for (int y = 0; y < v.ny; ++y)
      for (int x = 0; x < v.nx; ++x) {
        const float a = v.at(z, y, x);
        const float b = v.at(flip_z ? v.nz - 1 - z : z, flip_y ? v.ny - 1 - y : y, flip_x ? v.nx - 1 - x : x);
        m = std::max(m, double(std::fabs(a - b)));
      }
  return m / peak;
}

void check_normalized(const Volume& v) {
  CHECK(std::fabs(sum_of(v) - 1.0) < 1e-5);  // float sum of <= 1e5 values, each rounded at 6e-8 relative
  CHECK(min_of(v) >= 0.f);
}

// Airy disk constants: (2 J1(v) / v)^2 = 1/2 at v = 1.61634 -> FWHM = 2 * 1.61634 / (2 pi) lambda/NA
// = 0.5145 lambda/NA (the "0.51 lambda/NA" of the textbooks); its square has half maximum at
// v = 1.1580 -> 0.3686 lambda/NA (the confocal "0.37 lambda/NA").
constexpr double kAiryFwhm = 0.5145, kAiry2Fwhm = 0.3686;

// Axial widefield FWHM, textbook approximation (e.g. the Zeiss/Nikon confocal primers):
// 0.88 lambda / (n - sqrt(n^2 - NA^2)). It is the FWHM of sinc^2 when the pupil is uniform in
// cos(theta); the scalar model's rho d rho pupil weights cos(theta) by itself, which widens the
// axial profile by a few % at moderate NA and up to ~10-15% at high NA.
double axial_fwhm_textbook(double lambda, double na, double n) { return 0.88 * lambda / (n - std::sqrt(n * n - na * na)); }

}  // namespace

TEST_CASE("Gaussian PSF: FWHM 2 sqrt(2 ln 2) sigma, sum 1, symmetric, separable") {
  const Volume g = gaussian_psf(grid(61, 25, 21, 0.1, 0.1), 2.0, 8.0);
  check_normalized(g);
  CHECK(asymmetry(g, true, true, true) < 1e-6);
  // Linear interpolation of the half-maximum crossing on a sampled Gaussian: relative error
  // below 1% for sigma >= 2 pixels (curvature over one pixel), so 1.5%.
  const double k = 2 * std::sqrt(2 * std::log(2.0));
  CHECK(psf_fwhm(g, 2) == doctest::Approx(k * 2.0 * 0.1).epsilon(0.015));
  CHECK(psf_fwhm(g, 1) == doctest::Approx(k * 2.0 * 0.1).epsilon(0.015));
  CHECK(psf_fwhm(g, 0) == doctest::Approx(k * 8.0 * 0.1).epsilon(0.015));
  CHECK(psf_equivalent_sigma_px(g, 0) == doctest::Approx(8.0).epsilon(0.015));
  // Separable: v(z,y,x) v(cz,cy,cx) == v(z,cy,cx) v(cz,y,x) (up to float rounding).
  const float c = g.at(30, 12, 10);
  for (int z : {3, 25, 40})
    for (int y : {0, 9, 14})
      for (int x : {2, 10, 19})
        CHECK(double(g.at(z, y, x)) * c == doctest::Approx(double(g.at(z, 12, 10)) * g.at(30, y, x)).epsilon(1e-5));
  // sigma 0 is a delta along that axis.
  const Volume d = gaussian_psf(grid(5, 7, 7, 1, 1), 0.0, 1.0);
  CHECK(sum_of(d) == doctest::Approx(1.0).epsilon(1e-6));
  CHECK(d.at(2, 3, 2) == 0.f);
  CHECK(d.at(1, 3, 3) > 0.f);
}

TEST_CASE("widefield PSF: Airy lateral FWHM, textbook axial FWHM, symmetric, sum 1") {
  struct Case {
    double na, n, lambda, axial_tol;
  };
  // Axial tolerance: see axial_fwhm_textbook; the model is 0.7% / 0.9% / 3.9% wider than the
  // approximation at NA 0.3 / 0.8 / 1.2 (the pupil weighting grows with NA), so 3% / 3% / 8%.
  for (const Case& c : {Case{0.3, 1.0, 0.5, 0.03}, Case{0.8, 1.33, 0.52, 0.03}, Case{1.2, 1.33, 0.52, 0.08}}) {
    CAPTURE(c.na);
    const double lat = kAiryFwhm * c.lambda / c.na, ax = axial_fwhm_textbook(c.lambda, c.na, c.n);
    // Grid: ~8 pixels across the lateral FWHM, ~10 planes across the axial one, +-2 FWHM wide.
    const double dxy = lat / 8, dz = ax / 10;
    WidefieldParams p;
    p.na = c.na, p.n_immersion = c.n, p.wavelength_um = c.lambda;
    const Volume w = widefield_psf(grid(41, 33, 33, dz, dxy), p);
    check_normalized(w);
    CHECK(asymmetry(w, true, true, true) < 1e-5);
    CHECK(w.at(20, 16, 16) == *std::max_element(w.data.begin(), w.data.end()));
    const double got_lat = psf_fwhm(w, 2), got_ax = psf_fwhm(w, 0);
    MESSAGE("NA " << c.na << ": lateral FWHM " << got_lat << " um (Airy " << lat << "), axial " << got_ax
                  << " um (textbook " << ax << ")");
    // Lateral: the in-focus intensity is exactly the Airy pattern; 1.5% covers the linear
    // interpolation of the crossing at 8 pixels per FWHM and the Simpson quadrature.
    CHECK(got_lat == doctest::Approx(lat).epsilon(0.015));
    CHECK(psf_fwhm(w, 1) == doctest::Approx(got_lat).epsilon(1e-6));
    CHECK(got_ax == doctest::Approx(ax).epsilon(c.axial_tol));
  }
}

TEST_CASE("widefield PSF equals psfmodels' Gibson-Lanni (F. Aguet's implementation), matched and aberrated") {
  // tests/fixtures/psfmodels_widefield.safetensors, made by scripts/psf_reference.py (which explains
  // the axial coordinate mapping): each volume divided by its maximum, on this grid.
  const SafetensorsFile ref = read_safetensors(test::source_path("tests/fixtures/psfmodels_widefield.safetensors"));
  struct Case {
    std::string name;
    double n_sample, depth_um;
  };
  for (const Case& c : {Case{"born_wolf", 1.33, 0.0}, Case{"gibson_lanni", 1.45, 5.0}}) {
    CAPTURE(c.name);
    WidefieldParams p;
    p.na = 1.2, p.wavelength_um = 0.52, p.n_immersion = 1.33, p.n_sample = c.n_sample, p.depth_um = c.depth_um;
    Volume ours = widefield_psf(grid(21, 17, 17, 0.15, 0.06), p);
    const float peak = *std::max_element(ours.data.begin(), ours.data.end());
    const SafeTensor& theirs = ref.tensors.at(c.name);
    REQUIRE(theirs.shape == std::vector<int64_t>{21, 17, 17});
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      const double d = std::fabs(double(ours.data[i]) / peak - theirs.data[i]);
      if (d > worst) worst = d, at = i;
    }
    MESSAGE(c.name << ": max |ours - psfmodels| = " << worst << " of the peak, at voxel " << at);
    // Measured 6.4e-4 / 6.5e-4: psfmodels' linear interpolation of its radial profile (at 5x finer
    // pixels) and both quadratures; the aberrated focus lies 1 um off the nominal one, so a wrong
    // focal shift, defocus sign or aberration term is O(1) apart.
    CHECK(worst < 2e-3);
  }
}

TEST_CASE("Gibson-Lanni: matched indices give Born-Wolf; a mismatch shifts and stretches the focus") {
  WidefieldParams bw;
  bw.na = 1.2, bw.n_immersion = 1.33, bw.wavelength_um = 0.52;
  const PsfGrid g = grid(41, 21, 21, 0.08, 0.04);
  const Volume a = widefield_psf(g, bw);
  WidefieldParams matched = bw;
  matched.n_sample = 1.33, matched.depth_um = 20;
  const Volume b = widefield_psf(g, matched);
  CHECK_CLOSE_ARRAYS("matched GL vs BW", a.data.data(), b.data.data(), a.size(), 0.0, 0.0);

  // Oil objective (n 1.515, NA 1.0 so the pupil stays below the sample index) focusing 10 um into
  // water: spherical aberration moves the intensity maximum along z and breaks the axial mirror
  // symmetry; laterally the PSF stays symmetric. The stage shift that refocuses on the emitter
  // lies between the paraxial-ray estimate depth * (n / ns - 1) = 1.39 um and the marginal-ray
  // one depth * (tan(theta_s) / tan(theta_i) - 1) = 2.97 um (sin(theta) = NA / index).
  WidefieldParams mis;
  mis.na = 1.0, mis.n_immersion = 1.515, mis.n_sample = 1.33, mis.wavelength_um = 0.52, mis.depth_um = 10;
  const Volume m = widefield_psf(grid(81, 21, 21, 0.1, 0.05), mis);
  check_normalized(m);
  const size_t ipk = size_t(std::max_element(m.data.begin(), m.data.end()) - m.data.begin());
  const double shift = std::fabs((int(ipk / m.plane()) - 40) * 0.1);
  MESSAGE("index-mismatch focal shift " << shift << " um (paraxial 1.39 um, marginal-ray 2.97 um)");
  CHECK(shift >= 1.39);
  CHECK(shift <= 2.97);
  CHECK(asymmetry(m, true, false, false) > 0.05);
  CHECK(asymmetry(m, false, true, true) < 1e-5);
}

TEST_CASE("confocal PSF: point pinhole = widefield_ex * widefield_em, lateral FWHM 0.37 lambda/NA") {
  ConfocalParams c;
  c.na = 1.1, c.n_immersion = 1.33, c.wavelength_ex_um = 0.5, c.wavelength_em_um = 0.5, c.pinhole_au = 0;
  const PsfGrid g = grid(41, 33, 33, 0.05, 0.37 * 0.5 / 1.1 / 8);
  const Volume conf = confocal_psf(g, c);
  check_normalized(conf);
  CHECK(asymmetry(conf, true, true, true) < 1e-5);
  // 1.5%: interpolation at ~8 pixels per FWHM and quadrature, as for the widefield case.
  CHECK(psf_fwhm(conf, 2) == doctest::Approx(kAiry2Fwhm * 0.5 / 1.1).epsilon(0.015));
  WidefieldParams w;
  w.na = 1.1, w.n_immersion = 1.33, w.wavelength_um = 0.5;
  Volume wf = widefield_psf(g, w);
  for (size_t i = 0; i < wf.size(); ++i) wf.data[i] *= wf.data[i];
  normalize_sum(wf, "test");
  // Same float arithmetic up to the normalization order: 1e-6 relative of the peak.
  CHECK_CLOSE_ARRAYS("point pinhole", wf.data.data(), conf.data.data(), wf.size(), 1e-6 * wf.data[wf.index(20, 16, 16)], 1e-4);
  // Opening the pinhole widens the PSF towards the widefield one (monotonic in pinhole size).
  c.pinhole_au = 1.0;
  const double f1 = psf_fwhm(confocal_psf(g, c), 2);
  c.pinhole_au = 3.0;
  const double f3 = psf_fwhm(confocal_psf(g, c), 2);
  const double fwf = kAiryFwhm * 0.5 / 1.1;
  MESSAGE("confocal lateral FWHM: point " << psf_fwhm(conf, 2) << ", 1 AU " << f1 << ", 3 AU " << f3 << ", widefield " << fwf);
  CHECK(f1 > psf_fwhm(conf, 2) * 1.02);
  CHECK(f3 > f1);
  CHECK(f3 < fwf * 1.05);
  CHECK_THROWS_AS(confocal_psf(g, ConfocalParams{1.1, 0.5, 0.5, 1.33, -1.0}), Error);
}

TEST_CASE("light-sheet PSF: detection PSF times the Gaussian sheet, w0 = lambda_ex / (pi NA_illum)") {
  LightSheetParams p;
  p.na_detect = 0.8, p.na_illum = 0.1, p.wavelength_ex_um = 0.488, p.wavelength_em_um = 0.52, p.n_immersion = 1.33;
  const PsfGrid g = grid(61, 21, 21, 0.1, 0.05);
  const Volume ls = lightsheet_psf(g, p);
  check_normalized(ls);
  WidefieldParams d;
  d.na = 0.8, d.n_immersion = 1.33, d.wavelength_um = 0.52;
  const Volume det = widefield_psf(g, d);
  // Along z at the waist (x = centre) the ratio to the detection PSF is exp(-2 z^2 / w0^2).
  const double w0 = 0.488 / (M_PI * 0.1);
  const double r0 = double(ls.at(30, 10, 10)) / det.at(30, 10, 10);
  for (int z : {0, 10, 20, 25, 35, 50}) {
    const double zz = (z - 30) * 0.1;
    CHECK(double(ls.at(z, 10, 10)) / det.at(z, 10, 10) / r0 == doctest::Approx(std::exp(-2 * zz * zz / (w0 * w0))).epsilon(1e-4));
  }
  // The sheet (FWHM sqrt(2 ln 2) w0 = 1.83 um) narrows the detection's axial FWHM (~1.8 um);
  // for Gaussian-like profiles 1/f^2 = 1/f1^2 + 1/f2^2 gives ~1.3 um: allow 1.1-1.5 um.
  const double f_ax = psf_fwhm(ls, 0);
  MESSAGE("light-sheet axial FWHM " << f_ax << " um, detection alone " << psf_fwhm(det, 0) << " um");
  CHECK(f_ax < 0.9 * psf_fwhm(det, 0));
  CHECK(f_ax > 1.1);
  CHECK(f_ax < 1.5);
  // Laterally along y (the sheet is uniform in y) the detection PSF is unchanged.
  CHECK(psf_fwhm(ls, 1) == doctest::Approx(psf_fwhm(det, 1)).epsilon(1e-6));
  CHECK(asymmetry(ls, true, true, true) < 1e-5);  // w(x) is even in x
}

TEST_CASE("PSF models refuse bad grids and parameters") {
  CHECK_THROWS_AS(gaussian_psf(grid(4, 5, 5, 1, 1), 1, 1), Error);
  CHECK_THROWS_AS(gaussian_psf(grid(5, 5, 5, 0, 1), 1, 1), Error);
  CHECK_THROWS_AS(gaussian_psf(grid(5, 5, 5, 1, 1), -1, 1), Error);
  CHECK_THROWS_AS(gaussian_psf(grid(5, 5, 5, 1, 1), NAN, 1), Error);
  WidefieldParams w;
  w.na = 1.4, w.n_immersion = 1.33;  // NA above the medium's index
  CHECK_THROWS_AS(widefield_psf(grid(5, 5, 5, 0.1, 0.1), w), Error);
  w.na = 0.8, w.wavelength_um = 0;
  CHECK_THROWS_AS(widefield_psf(grid(5, 5, 5, 0.1, 0.1), w), Error);
}

namespace {

// Synthetic bead: Gaussian (sigma in um) at a sub-voxel position, background and Gaussian noise.
Volume synthetic_bead(double cz, double cy, double cx, double noise, uint64_t seed) {
  Volume v(31, 41, 39);
  v.voxel.z = 0.2, v.voxel.y = 0.1, v.voxel.x = 0.1;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n(0.0, 1.0);
  const double sz = 0.4, sxy = 0.15;  // um
  for (int z = 0; z < v.nz; ++z)
    for (int y = 0; y < v.ny; ++y)
      for (int x = 0; x < v.nx; ++x) {
        const double dz = (z - cz) * 0.2, dy = (y - cy) * 0.1, dx = (x - cx) * 0.1;
        v.at(z, y, x) = float(100 + 5000 * std::exp(-dz * dz / (2 * sz * sz) - (dy * dy + dx * dx) / (2 * sxy * sxy)) +
                              noise * n(rng));
      }
  return v;
}

}  // namespace

TEST_CASE("measured PSF: background removed, centred, resampled to the target voxel, sum 1") {
  const Volume bead = synthetic_bead(14.3, 22.6, 17.4, 0.0, 1);
  const PsfGrid g = grid(21, 21, 21, 0.1, 0.05);  // finer than the bead's voxels: upsampling
  MeasuredPsfOptions opt;
  opt.centering = PsfCentering::Centroid;
  MeasuredPsfInfo found;
  const Volume psf = measured_psf(bead, g, opt, &found);
  check_normalized(psf);
  // The bead sits on a background of 100 (noise-free here) with its peak near (14, 23, 17).
  CHECK(found.background == doctest::Approx(100.0).epsilon(1e-6));
  CHECK(found.noise == doctest::Approx(0.0));
  CHECK(found.peak > 1000);
  CHECK(found.peak_z == 14);
  CHECK(found.peak_y == 23);
  CHECK(found.peak_x == 17);
  // Centroid within 0.1 target voxel of the centre: trilinear interpolation of a Gaussian
  // sampled at 0.2/0.1 um is slightly asymmetric around a sub-voxel centre.
  double s = 0, mz = 0, my = 0, mx = 0;
  for (int z = 0; z < 21; ++z)
    for (int y = 0; y < 21; ++y)
      for (int x = 0; x < 21; ++x) {
        const double f = psf.at(z, y, x);
        s += f, mz += f * (z - 10), my += f * (y - 10), mx += f * (x - 10);
      }
  CHECK(std::fabs(mz / s) < 0.1);
  CHECK(std::fabs(my / s) < 0.1);
  CHECK(std::fabs(mx / s) < 0.1);
  // Widths in um are preserved by the resampling: FWHM = 2.3548 sigma. Trilinear interpolation
  // of samples 0.2 um (z) / 0.1 um apart widens a Gaussian of sigma 0.4 / 0.15 um by <= ~5%.
  CHECK(psf_fwhm(psf, 0) == doctest::Approx(2.3548 * 0.4).epsilon(0.05));
  CHECK(psf_fwhm(psf, 2) == doctest::Approx(2.3548 * 0.15).epsilon(0.05));
  // The border of the result carries no leftover background (it was subtracted exactly).
  CHECK(psf.at(0, 0, 0) < 1e-6);

  // Integer peak centring with equal voxel sizes is an exact crop: the peak voxel lands on the
  // centre and neighbours keep their ratios.
  PsfGrid same = grid(11, 11, 11, 0.2, 0.1);
  const Volume bead2 = synthetic_bead(15, 20, 19, 0.0, 2);
  const Volume crop = measured_psf(bead2, same);
  CHECK(crop.at(5, 5, 5) == *std::max_element(crop.data.begin(), crop.data.end()));
  CHECK(double(crop.at(5, 5, 6)) / crop.at(5, 5, 5) ==
        doctest::Approx((bead2.at(15, 20, 20) - 100.0) / (bead2.at(15, 20, 19) - 100.0)).epsilon(1e-5));

  // Downsampling (target voxel 0.4 um > 0.1 um) averages sub-samples and keeps the sum 1.
  const Volume coarse = measured_psf(bead, grid(9, 9, 9, 0.4, 0.2));
  check_normalized(coarse);
  CHECK(coarse.at(4, 4, 4) == *std::max_element(coarse.data.begin(), coarse.data.end()));
}

TEST_CASE("measured PSF: a bead as sharp as one voxel stays centred") {
  // A delta (plus a weaker neighbour) on a background: 3x3x3 smoothing gives many voxels the same
  // value; the peak must still be the brightest voxel, not the first of the tie in memory order
  // (which moved the PSF by one voxel along every axis).
  Volume bead(21, 23, 25, 10.f);
  bead.voxel.z = 0.2, bead.voxel.y = 0.1, bead.voxel.x = 0.1;
  bead.at(10, 11, 12) = 1010.f;
  MeasuredPsfInfo found;
  const Volume psf = measured_psf(bead, grid(9, 9, 9, 0.2, 0.1), {}, &found);
  CHECK(found.peak_z == 10);
  CHECK(found.peak_y == 11);
  CHECK(found.peak_x == 12);
  CHECK(psf.at(4, 4, 4) == doctest::Approx(1.0));  // all of it at the centre voxel
  bead.at(10, 10, 12) = 510.f;  // a neighbour half as bright: still centred on the brightest
  const Volume psf2 = measured_psf(bead, grid(9, 9, 9, 0.2, 0.1), {}, &found);
  CHECK(found.peak_y == 11);
  CHECK(psf2.at(4, 4, 4) == doctest::Approx(2.0 / 3));
  CHECK(psf2.at(4, 3, 4) == doctest::Approx(1.0 / 3));
}

TEST_CASE("measured PSF: noisy bead and clear errors") {
  // Noise sigma 20 on a peak of 5000: the peak is found and the result is non-negative.
  const Volume noisy = synthetic_bead(15.2, 20.4, 18.9, 20.0, 3);
  const Volume psf = measured_psf(noisy, grid(15, 15, 15, 0.1, 0.1));
  check_normalized(psf);
  CHECK(psf.at(7, 7, 7) > 0.5 * *std::max_element(psf.data.begin(), psf.data.end()));

  const PsfGrid g = grid(11, 11, 11, 0.2, 0.1);
  Volume flat(21, 21, 21, 100.f);
  CHECK_THROWS_WITH_AS(measured_psf(flat, g), doctest::Contains("no bead"), Error);
  // Pure noise: no peak stands 5 sigma above the border noise after 3x3x3 smoothing.
  Volume noise = synthetic_bead(15, 20, 19, 20.0, 4);
  for (float& f : noise.data) f = 100.f + (f - 100.f) * 0.f;
  std::mt19937_64 rng(5);
  std::normal_distribution<float> nd(0.f, 20.f);
  for (float& f : noise.data) f += nd(rng);
  CHECK_THROWS_WITH_AS(measured_psf(noise, g), doctest::Contains("no bead"), Error);
  Volume cut = synthetic_bead(0, 20, 19, 0.0, 6);  // peak on the first plane
  CHECK_THROWS_WITH_AS(measured_psf(cut, g), doctest::Contains("border"), Error);
  Volume nan = synthetic_bead(15, 20, 19, 0.0, 7);
  nan.data[1234] = NAN;
  CHECK_THROWS_AS(measured_psf(nan, g), Error);
  CHECK_THROWS_AS(measured_psf(synthetic_bead(15, 20, 19, 0.0, 8), grid(10, 11, 11, 0.2, 0.1)), Error);
  MeasuredPsfOptions bad;
  bad.background = PsfBackground::Percentile, bad.percentile = 101;
  CHECK_THROWS_AS(measured_psf(synthetic_bead(15, 20, 19, 0.0, 9), g, bad), Error);
}

namespace {
bool file_exists(const std::string& p) { return std::ifstream(p).good(); }
}  // namespace

TEST_CASE("measured PSF from the real lattice light-sheet bead (pycudadecon_lls_psf.tif)") {
  const std::string path = test::source_path("../shared/data/real/pycudadecon_lls_psf.tif");
  if (!file_exists(path)) {
    MESSAGE("skipped: " << path << " not found");
    return;
  }
  // Camera background ~150 (border median), voxel 0.1 / 0.101 um; onto a 0.1 um isotropic grid.
  const Volume psf = load_measured_psf(path, grid(31, 31, 31, 0.1, 0.1));
  check_normalized(psf);
  CHECK(psf.at(15, 15, 15) == *std::max_element(psf.data.begin(), psf.data.end()));
  // Background removed: the outer layer holds little of the peak (the lattice side lobes
  // extend laterally, so a few % of the peak remains there, but not the ~2% flat offset per
  // voxel that a camera background of 150 on a peak of 7800 would leave everywhere).
  double border = 0;
  int nb = 0;
  for (int z = 0; z < 31; ++z)
    for (int y = 0; y < 31; ++y) border += psf.at(z, y, 0) + psf.at(z, y, 30), nb += 2;
  const double ratio = border / nb / psf.at(15, 15, 15);
  MESSAGE("LLS bead: FWHM z/y/x = " << psf_fwhm(psf, 0) << " / " << psf_fwhm(psf, 1) << " / " << psf_fwhm(psf, 2)
                                    << " um; mean x-border / peak = " << ratio);
  CHECK(ratio < 0.01);
  // A diffraction-limited bead: lateral FWHM between 0.2 and 0.6 um.
  CHECK(psf_fwhm(psf, 2) > 0.2);
  CHECK(psf_fwhm(psf, 2) < 0.6);
}

TEST_CASE("measured PSF from flowdec's computed bead kernel (64^3, no voxel size stated)") {
  const std::string path = test::source_path("../shared/data/real/flowdec_bead25_kernel.tif");
  if (!file_exists(path)) {
    MESSAGE("skipped: " << path << " not found");
    return;
  }
  // The file states no voxel size: without one the loader refuses.
  CHECK_THROWS_WITH_AS(load_measured_psf(path, grid(21, 21, 21, 1, 1)), doctest::Contains("voxel size"), Error);
  MeasuredPsfOptions opt;
  opt.source_dz_um = opt.source_dy_um = opt.source_dx_um = 1.0;
  opt.background = PsfBackground::None;  // a computed kernel: no camera background
  const Volume psf = load_measured_psf(path, grid(21, 21, 21, 1, 1), opt);
  check_normalized(psf);
  CHECK(psf.at(10, 10, 10) == *std::max_element(psf.data.begin(), psf.data.end()));
  // Same voxel size and integer centring: an exact crop around the peak (32,32,32), whose
  // neighbours along x are 5659 / 13830 / 967 in the file.
  CHECK(double(psf.at(10, 10, 9)) / psf.at(10, 10, 10) == doctest::Approx(5659.0 / 13830).epsilon(1e-3));
  CHECK(double(psf.at(10, 10, 11)) / psf.at(10, 10, 10) == doctest::Approx(967.0 / 13830).epsilon(1e-3));
}
