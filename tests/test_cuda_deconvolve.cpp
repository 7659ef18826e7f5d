// test_cuda_deconvolve.cpp: Richardson-Lucy on the GPU against the CPU (both edge modes, 3D and
// 2D). Skips without a GPU.
#include <algorithm>
#include <cmath>
#include <random>

#include "imaging/deconvolve.h"
#include "imaging/fft_convolve.h"
#include "imaging/psf.h"
#include "test_util.h"

using namespace isonet;

namespace {

Volume blurred_random_object(int nz, int ny, int nx, const Volume& psf, uint64_t seed) {
  Volume obj(nz, ny, nx);
  obj.data = test::random_vector(obj.size(), seed, 0.f, 1.f);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<size_t> pick(0, obj.size() - 1);
  for (int i = 0; i < 40; ++i) obj.data[pick(rng)] += 50.f;  // bright points
  return fft_convolve(obj, psf);
}

void check_parity(const Volume& data, const Volume& psf, RlEdge edge) {
  RichardsonLucyOptions opt;
  opt.iterations = 15;
  opt.edge = edge;
  const Volume cpu = richardson_lucy(data, psf, opt, Device::CPU);
  const Volume gpu = richardson_lucy(data, psf, opt, Device::CUDA);
  REQUIRE(gpu.size() == cpu.size());
  const float peak = *std::max_element(cpu.data.begin(), cpu.data.end());
  // cuFFT and FFTW round differently (~1e-6 of the peak per convolution). These problems do
  // not amplify input differences: on the CPU, a 2e-6 relative perturbation of the data moves
  // the 15-iteration result by <= 2e-6 of the peak. 30 transforms accumulate at most ~3e-5,
  // so 1e-4 of the peak absolute plus 1e-4 relative leaves a 3x margin; a broken GPU step
  // (flip, normalization, a skipped iteration) changes the result by percents.
  CHECK_CLOSE_ARRAYS("RL cpu vs gpu", cpu.data.data(), gpu.data.data(), cpu.size(), 1e-4 * peak, 1e-4);
  CHECK(*std::min_element(gpu.data.begin(), gpu.data.end()) >= 0.f);
}

}  // namespace

TEST_CASE("GPU Richardson-Lucy matches the CPU (3D, reflect and masked edges)") {
  if (!test::gpu_or_skip()) return;
  PsfGrid g;
  g.nz = 9, g.ny = 7, g.nx = 7;
  const Volume psf = gaussian_psf(g, 1.2, 2.5);
  const Volume data = blurred_random_object(23, 35, 33, psf, 201);
  check_parity(data, psf, RlEdge::Reflect);
  check_parity(data, psf, RlEdge::Masked);
}

TEST_CASE("GPU Richardson-Lucy matches the CPU (2D)") {
  if (!test::gpu_or_skip()) return;
  PsfGrid g;
  g.nz = 1, g.ny = 11, g.nx = 9;
  const Volume psf = gaussian_psf(g, 1.7, 0.0);
  check_parity(blurred_random_object(1, 61, 57, psf, 202), psf, RlEdge::Reflect);
}
