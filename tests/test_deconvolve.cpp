// test_deconvolve.cpp: Richardson-Lucy on the CPU: a known object blurred with the PSF is
// restored better than the blurred input; agreement with scikit-image's richardson_lucy
// (scripts/rl_reference.py) where edges play no part; non-negativity; flux; edges not darkened;
// 2D; errors.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>

#include "imaging/deconvolve.h"
#include "imaging/fft_convolve.h"
#include "imaging/psf.h"
#include "kernels/error.h"
#include "test_util.h"

using namespace isonet;

namespace {

PsfGrid grid(int nz, int ny, int nx) {
  PsfGrid g;
  g.nz = nz, g.ny = ny, g.nx = nx;
  return g;
}

// Object: small bright blobs (sigma ~1 voxel) and a few points on a dim background, [nz, ny, nx].
Volume make_object(int nz, int ny, int nx, uint64_t seed) {
  Volume v(nz, ny, nx, 1.f);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> uz(0, nz - 1), uy(0, ny - 1), ux(0, nx - 1);
  for (int i = 0; i < nz * ny * nx / 1000; ++i) v.at(uz(rng), uy(rng), ux(rng)) += 30.f;
  for (int b = 0; b < nz * ny * nx / 400; ++b) {
    const int cz = uz(rng), cy = uy(rng), cx = ux(rng);
    for (int z = std::max(0, cz - 4); z <= std::min(nz - 1, cz + 4); ++z)
      for (int y = std::max(0, cy - 4); y <= std::min(ny - 1, cy + 4); ++y)
        for (int x = std::max(0, cx - 4); x <= std::min(nx - 1, cx + 4); ++x) {
          const double d2 = (z - cz) * (z - cz) + (y - cy) * (y - cy) + (x - cx) * (x - cx);
          v.at(z, y, x) += float(30 * std::exp(-d2 / 2));
        }
  }
  return v;
}

// A comet-shaped 5x7x7 PSF: a Gaussian (sigma_z 0.8, sigma_xy as given) plus a weaker copy 2 voxels
// along +x and 1 along -y, normalized to sum 1 (the data must be blurred with the PSF RL assumes).
Volume comet_psf(double sigma_xy) {
  Volume psf = gaussian_psf(grid(5, 7, 7), 0.8, sigma_xy);
  const Volume g = psf;
  for (int z = 0; z < 5; ++z)
    for (int y = 0; y < 7; ++y)
      for (int x = 0; x < 7; ++x)
        if (x - 2 >= 0 && y + 1 < 7) psf.at(z, y, x) += 0.7f * g.at(z, y + 1, x - 2);
  normalize_sum(psf, "comet PSF");
  return psf;
}

double rel_error(const Volume& a, const Volume& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a.data[i]) - ref.data[i];
    num += d * d, den += double(ref.data[i]) * ref.data[i];
  }
  return std::sqrt(num / den);
}

double sum_of(const Volume& v) {
  double s = 0;
  for (float f : v.data) s += f;
  return s;
}

// `inner` placed at (z0, y0, x0) in a zero volume [nz, ny, nx].
Volume embed(const Volume& inner, int nz, int ny, int nx, int z0, int y0, int x0) {
  Volume out(nz, ny, nx, 0.f);
  for (int z = 0; z < inner.nz; ++z)
    for (int y = 0; y < inner.ny; ++y)
      for (int x = 0; x < inner.nx; ++x) out.at(z + z0, y + y0, x + x0) = inner.at(z, y, x);
  return out;
}

// Crop [z0.., y0.., x0..) of size (nz, ny, nx).
Volume crop(const Volume& v, int z0, int y0, int x0, int nz, int ny, int nx) {
  Volume out(nz, ny, nx);
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x) out.at(z, y, x) = v.at(z + z0, y + y0, x + x0);
  return out;
}

}  // namespace

TEST_CASE("RL restores a blurred known object better than the blurred input (3D, both edge modes)") {
  // Blur a larger object and crop, so the data's edges see structure from outside (real data).
  const Volume psf = gaussian_psf(grid(9, 7, 7), 1.0, 2.0);
  const Volume big = make_object(27, 39, 37, 1);
  const Volume truth = crop(big, 3, 3, 3, 21, 33, 31);
  const Volume blurred = crop(fft_convolve(big, psf), 3, 3, 3, 21, 33, 31);
  const double e0 = rel_error(blurred, truth);
  for (RlEdge edge : {RlEdge::Reflect, RlEdge::Masked}) {
    RichardsonLucyOptions opt;
    opt.iterations = 30;
    opt.edge = edge;
    const Volume rl = richardson_lucy(blurred, psf, opt);
    const double e = rel_error(rl, truth);
    MESSAGE(std::string(edge == RlEdge::Reflect ? "reflect" : "masked") << ": relative L2 error blurred " << e0
                                                                         << " -> RL " << e);
    // Noise-free data of sparse points: 30 iterations recover a large part of the lost
    // contrast; requiring a 25% lower error than the input leaves margin yet fails for any
    // broken step (a wrong flip or normalization makes the error grow).
    CHECK(e < 0.75 * e0);
    CHECK(*std::min_element(rl.data.begin(), rl.data.end()) >= 0.f);
    CHECK(rl.voxel.z == blurred.voxel.z);
  }
}

TEST_CASE("RL with an asymmetric PSF (catches a flipped adjoint)") {
  // With convolve in place of correlate the iteration would converge to a shifted object.
  const Volume psf = comet_psf(1.0);
  const Volume big = make_object(21, 33, 31, 5);
  const Volume truth = crop(big, 2, 3, 3, 17, 27, 25);
  const Volume blurred = crop(fft_convolve(big, psf), 2, 3, 3, 17, 27, 25);
  RichardsonLucyOptions opt;
  opt.iterations = 30;
  const Volume rl = richardson_lucy(blurred, psf, opt);
  const double e0 = rel_error(blurred, truth), e = rel_error(rl, truth);
  MESSAGE("asymmetric PSF: relative L2 error blurred " << e0 << " -> RL " << e);
  CHECK(e < 0.75 * e0);  // as in the symmetric case
}

TEST_CASE("RL agrees with scikit-image's richardson_lucy where the edges play no part") {
  // scikit-image (code nobody here wrote) starts from 0.5 and pads with zeros; we start from the
  // mean and correct the edges. From any constant start the first iterate is A^T y where the blur
  // of a constant is that constant, and data that are zero within the PSF's reach of every border
  // keep the estimate zero there in both (RL is multiplicative), so the iterates coincide. Object:
  // blobs in the middle (zero margin of 6 voxels, > the PSF's half-size 2/3/3 plus the blobs'
  // reach), blurred with an asymmetric PSF (a flipped adjoint on either side would show).
  const std::string py = test::find_python("numpy, skimage.restoration");
  if (py.empty()) {
    MESSAGE("SKIPPED: python3 with numpy and scikit-image not found");
    return;
  }
  const Volume psf = comet_psf(1.2);
  const Volume object = embed(make_object(10, 18, 16, 8), 22, 30, 28, 6, 6, 6);
  Volume blurred = fft_convolve(object, psf);
  for (float& v : blurred.data) v = std::max(v, 0.f);  // FFT round-off around zero
  // Zero data within the PSF's reach of every border (what the equality needs).
  for (int z = 0; z < 22; ++z)
    for (int y = 0; y < 30; ++y)
      for (int x = 0; x < 28; ++x)
        if (z < 3 || z >= 19 || y < 4 || y >= 26 || x < 4 || x >= 24) blurred.at(z, y, x) = 0.f;

  test::TempDir dir;
  test::write_raw_floats(dir.file("image.raw"), blurred.data);
  test::write_raw_floats(dir.file("psf.raw"), psf.data);
  constexpr int kIterations = 12;
  const std::string cmd = py + " " + test::source_path("scripts/rl_reference.py") + " " + dir.file("image.raw") +
                          " 22 30 28 " + dir.file("psf.raw") + " 5 7 7 " + std::to_string(kIterations) + " " +
                          dir.file("skimage.raw");
  REQUIRE(std::system(cmd.c_str()) == 0);
  const std::vector<float> reference = test::read_raw_floats(dir.file("skimage.raw"));
  REQUIRE(reference.size() == blurred.size());
  double peak = 0;
  for (float v : reference) peak = std::max(peak, double(v));
  for (RlEdge edge : {RlEdge::Masked, RlEdge::Reflect}) {
    RichardsonLucyOptions opt;
    opt.iterations = kIterations;
    opt.edge = edge;
    const Volume ours = richardson_lucy(blurred, psf, opt);
    double worst = 0;
    for (size_t i = 0; i < reference.size(); ++i) worst = std::max(worst, std::fabs(double(ours.data[i]) - reference[i]));
    const std::string mode = edge == RlEdge::Masked ? "masked" : "reflect";
    INFO("edge " << mode << ": max |ours - skimage| = " << worst << " of a peak " << peak);
    // float32 FFTs (ours) against float64 (scipy): measured 1.2e-6 (reflect) and 1.9e-6 (masked)
    // of the peak after 12 iterations; 1e-5 leaves room for other CPUs' rounding. One iteration
    // more on either side is 2.8e-2 of the peak apart.
    CHECK(worst <= 1e-5 * peak);
  }
}

TEST_CASE("RL keeps the estimate non-negative and the flux of a centred object") {
  // Object well inside the volume (zero near the edges), Poisson-like noise and a few negative
  // values (as after a background subtraction).
  const Volume psf = gaussian_psf(grid(7, 7, 7), 1.2, 1.8);
  const Volume obj = embed(make_object(9, 13, 11, 2), 19, 25, 23, 5, 6, 6);
  Volume data = fft_convolve(obj, psf);
  std::mt19937_64 rng(3);
  std::normal_distribution<float> noise(0.f, 0.05f);
  for (float& f : data.data) f += noise(rng);  // values near 0 become slightly negative
  RichardsonLucyOptions opt;
  opt.iterations = 25;
  const Volume rl = richardson_lucy(data, psf, opt);
  CHECK(*std::min_element(rl.data.begin(), rl.data.end()) >= 0.f);
  // Flux: RL conserves sum(A x) = sum(y) at every iteration (sum-1 PSF, normalized update);
  // here the object's blur stays inside the volume, the clipped negative noise adds ~0.5% and
  // the noise spread into the margin removes some: 2%.
  Volume clipped = data;
  for (float& f : clipped.data) f = std::max(0.f, f);
  CHECK(sum_of(rl) == doctest::Approx(sum_of(clipped)).epsilon(0.02));
}

TEST_CASE("RL does not darken the edges") {
  // A constant image is an exact fixed point in both modes: every weighted data voxel's blur
  // is fully inside the object domain, so A x = y there, the ratio is 1 and A^T w cancels it.
  // Without the normalization (or with the data's edge seeing zeros) the edges would darken.
  const Volume psf = gaussian_psf(grid(5, 9, 7), 1.5, 1.0);
  Volume flat(11, 17, 15, 50.f);
  for (RlEdge edge : {RlEdge::Reflect, RlEdge::Masked}) {
    RichardsonLucyOptions opt;
    opt.iterations = 15;
    opt.edge = edge;
    const Volume rl = richardson_lucy(flat, psf, opt);
    // Float FFT rounding only: ~1e-6 relative per transform, 30 transforms: 1e-4 of 50.
    CHECK_CLOSE_ARRAYS("constant image", flat.data.data(), rl.data.data(), flat.size(), 50 * 1e-4, 0.0);
  }
  // A linear ramp along x (its blur is itself, so it is the exact answer): the masked margin
  // can continue the ramp, and after 15 iterations the edge voxels are within 5% of it
  // (measured 3.3% at x = 0). The mirror's kink makes the reflect mode undershoot by ~15%
  // there (printed, not checked: that is the documented cost of assuming a mirror).
  Volume ramp(11, 17, 15);
  for (int z = 0; z < 11; ++z)
    for (int y = 0; y < 17; ++y)
      for (int x = 0; x < 15; ++x) ramp.at(z, y, x) = 10.f + 2.f * x;
  for (RlEdge edge : {RlEdge::Reflect, RlEdge::Masked}) {
    RichardsonLucyOptions opt;
    opt.iterations = 15;
    opt.edge = edge;
    const Volume rr = richardson_lucy(ramp, psf, opt);
    MESSAGE(std::string(edge == RlEdge::Reflect ? "reflect" : "masked")
            << " ramp (10 + 2x): x=0,1: " << rr.at(5, 8, 0) << " " << rr.at(5, 8, 1) << ", x=13,14: " << rr.at(5, 8, 13)
            << " " << rr.at(5, 8, 14));
    if (edge == RlEdge::Masked)
      for (int x : {0, 1, 13, 14}) CHECK(rr.at(5, 8, x) == doctest::Approx(ramp.at(5, 8, x)).epsilon(0.05));
  }
}

TEST_CASE("RL in 2D and with zero iterations") {
  const Volume psf2 = gaussian_psf(grid(1, 9, 9), 1.5, 0.0);
  const Volume big = make_object(1, 45, 43, 4);
  const Volume truth = crop(big, 0, 4, 4, 1, 37, 35);
  const Volume blurred = crop(fft_convolve(big, psf2), 0, 4, 4, 1, 37, 35);
  RichardsonLucyOptions opt;
  opt.iterations = 30;
  const Volume rl = richardson_lucy(blurred, psf2, opt);
  CHECK(rel_error(rl, truth) < 0.75 * rel_error(blurred, truth));  // as in the 3D case
  opt.iterations = 0;
  const Volume start = richardson_lucy(blurred, psf2, opt);
  const float mean = float(sum_of(blurred) / blurred.size());
  // The reflected extension has about the data's mean: 5%.
  CHECK(start.data[0] == doctest::Approx(mean).epsilon(0.05));
  CHECK(start.data[100] == start.data[0]);
}

TEST_CASE("RL refuses bad inputs with clear errors") {
  const Volume psf = gaussian_psf(grid(5, 5, 5), 1, 1);
  const Volume img(9, 9, 9, 1.f);
  CHECK_THROWS_WITH_AS(richardson_lucy(Volume(3, 9, 9, 1.f), psf), doctest::Contains("larger than the volume"), Error);
  CHECK_THROWS_WITH_AS(richardson_lucy(Volume(1, 9, 9, 1.f), psf), doctest::Contains("2D PSF"), Error);
  CHECK_THROWS_AS(richardson_lucy(img, Volume(4, 5, 5, 1.f)), Error);  // even PSF
  Volume nan_img = img;
  nan_img.data[17] = NAN;
  CHECK_THROWS_AS(richardson_lucy(nan_img, psf), Error);
  Volume nan_psf = psf;
  nan_psf.data[3] = NAN;
  CHECK_THROWS_AS(richardson_lucy(img, nan_psf), Error);
  Volume neg_psf = psf;
  neg_psf.data[3] = -1e-3f;
  CHECK_THROWS_WITH_AS(richardson_lucy(img, neg_psf), doctest::Contains("negative"), Error);
  CHECK_THROWS_AS(richardson_lucy(img, Volume(5, 5, 5, 0.f)), Error);  // sums to 0
  CHECK_THROWS_AS(richardson_lucy(Volume(9, 9, 9, -1.f), psf), Error);  // nothing positive
  RichardsonLucyOptions bad;
  bad.iterations = -1;
  CHECK_THROWS_AS(richardson_lucy(img, psf, bad), Error);
  bad.iterations = 1, bad.epsilon = 0;
  CHECK_THROWS_AS(richardson_lucy(img, psf, bad), Error);
  if (!cuda_available()) CHECK_THROWS_AS(richardson_lucy(img, psf, {}, Device::CUDA), Error);
}
