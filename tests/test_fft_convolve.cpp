// test_fft_convolve.cpp: FftConvolver on the CPU (FFTW) against a direct convolution computed in
// double: 3D, 2D and batched planes, odd and even kernel sizes; identity for a delta kernel;
// correlate as the exact adjoint; aliasing; errors.
#include <cmath>
#include <vector>

#include "imaging/fft_convolve.h"
#include "kernels/error.h"
#include "imaging_test_util.h"
#include "test_util.h"

using namespace isonet;
using isonet::test::random_vector;

namespace {

using test::random_volume;

// 'same' convolution (or correlation) with zeros outside, in double; kernel centre (k/2).
std::vector<float> direct(const Volume& img, const Volume& ker, bool correlate) {
  std::vector<float> out(img.size());
  const int cz = ker.nz / 2, cy = ker.ny / 2, cx = ker.nx / 2;
  for (int z = 0; z < img.nz; ++z)
    for (int y = 0; y < img.ny; ++y)
      for (int x = 0; x < img.nx; ++x) {
        double s = 0;
        for (int k = 0; k < ker.nz; ++k)
          for (int j = 0; j < ker.ny; ++j)
            for (int i = 0; i < ker.nx; ++i) {
              const int sgn = correlate ? 1 : -1;
              const int zz = z + sgn * (k - cz), yy = y + sgn * (j - cy), xx = x + sgn * (i - cx);
              if (zz < 0 || yy < 0 || xx < 0 || zz >= img.nz || yy >= img.ny || xx >= img.nx) continue;
              s += double(img.at(zz, yy, xx)) * ker.at(k, j, i);
            }
        out[img.index(z, y, x)] = float(s);
      }
  return out;
}

double sum_abs(const Volume& v) {
  double s = 0;
  for (float f : v.data) s += std::fabs(f);
  return s;
}

// Single-precision FFT round trip error: ~ eps_float * O(log N) * (max|image| * sum|kernel|).
// With eps = 6e-8 and log2 N <= 12 here, 1e-6 * scale leaves ~1.5x margin over the rounding
// bound and still fails at once for any indexing error (those are O(scale)).
double fft_tolerance(const Volume& img, const Volume& ker) {
  double m = 0;
  for (float f : img.data) m = std::max(m, double(std::fabs(f)));
  return 1e-6 * m * sum_abs(ker);
}

void check_against_direct(int nz, int ny, int nx, int kz, int ky, int kx, uint64_t seed) {
  INFO("image (" << nz << "," << ny << "," << nx << ") kernel (" << kz << "," << ky << "," << kx << ")");
  const Volume img = random_volume(nz, ny, nx, seed, -1.f, 1.f);
  const Volume ker = random_volume(kz, ky, kx, seed + 1, 0.f, 1.f);
  FftConvolver conv(nz, ny, nx, ker, Device::CPU);
  const double tol = fft_tolerance(img, ker);
  std::vector<float> got(img.size(), test::poison_value());
  conv.convolve(img.data.data(), got.data());
  const std::vector<float> ref = direct(img, ker, false);
  CHECK_CLOSE_ARRAYS("convolve", ref.data(), got.data(), ref.size(), tol, 0.0);
  std::fill(got.begin(), got.end(), test::poison_value());
  conv.correlate(img.data.data(), got.data());
  const std::vector<float> ref_c = direct(img, ker, true);
  CHECK_CLOSE_ARRAYS("correlate", ref_c.data(), got.data(), ref_c.size(), tol, 0.0);
}

}  // namespace

TEST_CASE("next_fast_fft_size returns the smallest 2,3,5,7-smooth size") {
  CHECK(next_fast_fft_size(1) == 1);
  CHECK(next_fast_fft_size(11) == 12);
  CHECK(next_fast_fft_size(13) == 14);
  CHECK(next_fast_fft_size(17) == 18);
  CHECK(next_fast_fft_size(97) == 98);
  CHECK(next_fast_fft_size(121) == 125);
  CHECK(next_fast_fft_size(1031) == 1050);
  CHECK_THROWS_AS(next_fast_fft_size(0), Error);
}

TEST_CASE("3D convolution matches the direct double-precision convolution (odd and even kernels)") {
  check_against_direct(9, 13, 11, 3, 5, 7, 11);
  check_against_direct(7, 10, 13, 4, 2, 6, 12);   // even kernel sizes: centre at k/2
  check_against_direct(5, 6, 9, 7, 9, 11, 13);    // kernel larger than the image along z and y
}

TEST_CASE("2D convolution (nz == 1) matches the direct convolution") {
  check_against_direct(1, 17, 23, 1, 7, 5, 21);
  check_against_direct(1, 16, 15, 1, 6, 4, 22);
  // A 3D kernel on one plane: only its central plane reaches the image (the direct sum agrees).
  check_against_direct(1, 11, 9, 5, 3, 3, 23);
}

TEST_CASE("batched planes: a one-plane kernel convolves every plane independently") {
  check_against_direct(5, 11, 13, 1, 5, 4, 31);
  FftConvolver conv(6, 9, 7, random_volume(1, 3, 3, 32, 0.f, 1.f), Device::CPU);
  CHECK(conv.batched_planes());
  CHECK(conv.padded_nz() == 6);  // no padding along z
  FftConvolver conv3(6, 9, 7, random_volume(3, 3, 3, 33, 0.f, 1.f), Device::CPU);
  CHECK_FALSE(conv3.batched_planes());
  CHECK(conv3.padded_nz() == next_fast_fft_size(6 + 3 - 1));
  // Planes are independent: changing one input plane changes only that output plane.
  Volume img = random_volume(6, 9, 7, 34, -1.f, 1.f);
  std::vector<float> a(img.size()), b(img.size());
  conv.convolve(img.data.data(), a.data());
  for (int i = 0; i < 9 * 7; ++i) img.plane_ptr(3)[i] += 1.f;
  conv.convolve(img.data.data(), b.data());
  for (int z = 0; z < 6; ++z) {
    double d = 0;
    for (size_t i = 0; i < img.plane(); ++i) d = std::max(d, double(std::fabs(a[z * img.plane() + i] - b[z * img.plane() + i])));
    if (z == 3)
      CHECK(d > 0.1);
    else
      CHECK(d < 1e-5);  // exact up to float rounding of the untouched planes
  }
}

TEST_CASE("a centred delta kernel is the identity (odd and even sizes)") {
  const Volume img = random_volume(7, 9, 11, 41, -3.f, 3.f);
  for (int k : {1, 3, 4}) {
    CAPTURE(k);
    Volume delta(k, k, k, 0.f);
    delta.at(k / 2, k / 2, k / 2) = 1.f;
    const Volume out = fft_convolve(img, delta);
    // Rounding of the forward and inverse float transforms of a value <= 3: 3 * ~1e-6.
    CHECK_CLOSE_ARRAYS("delta", img.data.data(), out.data.data(), img.size(), 5e-6, 0.0);
  }
}

TEST_CASE("correlate is the adjoint of convolve: <Ax, y> == <x, A^T y>") {
  for (int kz : {1, 3}) {
    CAPTURE(kz);
    const Volume ker = random_volume(kz, 5, 4, 51, -1.f, 1.f);
    const Volume x = random_volume(6, 9, 11, 52, -1.f, 1.f);
    const Volume y = random_volume(6, 9, 11, 53, -1.f, 1.f);
    FftConvolver conv(6, 9, 11, ker, Device::CPU);
    const test::AdjointGap g = test::adjoint_gap(conv, x, y);
    // Both sides are sums of ~600 float-rounded terms: relative to sum|terms|, 1e-5 is ~100x
    // the rounding; a wrong flip or offset changes the inner product by O(1) of it.
    CHECK(g.gap <= 1e-5 * g.scale);
  }
}

TEST_CASE("output may alias the input; the convolver is reusable and movable") {
  const Volume ker = random_volume(3, 3, 5, 61, 0.f, 1.f);
  Volume img = random_volume(5, 7, 9, 62, -1.f, 1.f);
  FftConvolver conv(5, 7, 9, ker, Device::CPU);
  std::vector<float> ref(img.size());
  conv.convolve(img.data.data(), ref.data());
  FftConvolver moved = std::move(conv);
  CHECK_THROWS_AS(conv.convolve(img.data.data(), ref.data()), Error);  // NOLINT: use after move is refused
  moved.convolve(img.data.data(), img.data.data());
  CHECK_CLOSE_ARRAYS("in place", ref.data(), img.data.data(), ref.size(), 0.0, 0.0);  // same arithmetic: bitwise
}

TEST_CASE("fft_convolve keeps the voxel size; bad inputs give clear errors") {
  Volume img = random_volume(3, 5, 7, 71, 0.f, 1.f);
  img.voxel.z = 0.5, img.voxel.y = 0.1, img.voxel.x = 0.1;
  Volume ker(1, 3, 3, 1.f / 9);
  const Volume out = fft_convolve(img, ker);
  CHECK(out.voxel.z == 0.5);
  CHECK(out.voxel.x == 0.1);
  CHECK_THROWS_AS(FftConvolver(0, 5, 5, ker, Device::CPU), Error);
  CHECK_THROWS_AS(FftConvolver(3, 5, 5, Volume(), Device::CPU), Error);
  Volume bad = ker;
  bad.data[4] = std::nanf("");
  CHECK_THROWS_AS(FftConvolver(3, 5, 5, bad, Device::CPU), Error);
  img.data[2] = INFINITY;
  CHECK_THROWS_AS(fft_convolve(img, ker), Error);
  if (!cuda_available()) CHECK_THROWS_AS(FftConvolver(3, 5, 5, ker, Device::CUDA), Error);
  FftConvolver cpu(3, 5, 7, ker, Device::CPU);
  std::vector<float> buf(3 * 5 * 7);
  CHECK_THROWS_AS(cpu.convolve_device(buf.data(), buf.data()), Error);
}
