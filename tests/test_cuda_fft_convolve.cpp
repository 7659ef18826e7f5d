// test_cuda_fft_convolve.cpp: the cuFFT FftConvolver against the FFTW one (3D, 2D, batched
// planes; convolve and correlate; host- and device-pointer calls). Skips without a GPU.
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

// Both backends round in single precision with different transform algorithms; each is within
// ~eps * log N * max|x| * sum|k| of the exact result (see test_fft_convolve.cpp), so their
// difference is within twice that: 2e-6 * scale, with margin for log2 N <= 14 here.
double parity_tolerance(const Volume& img, const Volume& ker) {
  double m = 0, s = 0;
  for (float f : img.data) m = std::max(m, double(std::fabs(f)));
  for (float f : ker.data) s += std::fabs(f);
  return 2e-6 * m * s;
}

void check_parity(int nz, int ny, int nx, int kz, int ky, int kx, uint64_t seed) {
  INFO("image (" << nz << "," << ny << "," << nx << ") kernel (" << kz << "," << ky << "," << kx << ")");
  const Volume img = random_volume(nz, ny, nx, seed, -1.f, 1.f);
  const Volume ker = random_volume(kz, ky, kx, seed + 1, 0.f, 1.f);
  FftConvolver cpu(nz, ny, nx, ker, Device::CPU);
  FftConvolver gpu(nz, ny, nx, ker, Device::CUDA);
  CHECK(gpu.device() == Device::CUDA);
  CHECK(gpu.batched_planes() == cpu.batched_planes());
  const double tol = parity_tolerance(img, ker);
  const size_t n = img.size(), bytes = n * sizeof(float);
  std::vector<float> ref(n), got(n);

  for (bool adjoint : {false, true}) {
    INFO((adjoint ? "correlate" : "convolve"));
    // Host-pointer calls.
    (adjoint ? cpu.correlate(img.data.data(), ref.data()) : cpu.convolve(img.data.data(), ref.data()));
    std::fill(got.begin(), got.end(), test::poison_value());
    (adjoint ? gpu.correlate(img.data.data(), got.data()) : gpu.convolve(img.data.data(), got.data()));
    CHECK_CLOSE_ARRAYS("host pointers", ref.data(), got.data(), n, tol, 0.0);

    // Device-pointer calls, out aliasing in.
    float* d = static_cast<float*>(device_alloc(Device::CUDA, bytes));
    device_copy(d, Device::CUDA, img.data.data(), Device::CPU, bytes);
    (adjoint ? gpu.correlate_device(d, d) : gpu.convolve_device(d, d));
    device_synchronize(Device::CUDA);
    std::fill(got.begin(), got.end(), test::poison_value());
    device_copy(got.data(), Device::CPU, d, Device::CUDA, bytes);
    device_free(Device::CUDA, d, bytes);
    CHECK_CLOSE_ARRAYS("device pointers, in place", ref.data(), got.data(), n, tol, 0.0);
  }
}

}  // namespace

TEST_CASE("cuFFT convolver matches FFTW: 3D, odd and even kernels") {
  if (!test::gpu_or_skip()) return;
  check_parity(9, 13, 11, 3, 5, 7, 101);
  check_parity(7, 10, 13, 4, 2, 6, 102);
  check_parity(21, 45, 39, 9, 11, 7, 103);
}

TEST_CASE("cuFFT convolver matches FFTW: 2D and batched planes") {
  if (!test::gpu_or_skip()) return;
  check_parity(1, 17, 23, 1, 7, 5, 111);
  check_parity(1, 11, 9, 5, 3, 3, 112);     // 3D kernel on one plane: central plane
  check_parity(33, 41, 37, 1, 9, 15, 113);  // batched planes, the training-pair mode
}

TEST_CASE("cuFFT convolver: delta identity and adjointness on the device") {
  if (!test::gpu_or_skip()) return;
  const Volume img = random_volume(8, 15, 12, 121, -2.f, 2.f);
  Volume delta(3, 4, 3, 0.f);
  delta.at(1, 2, 1) = 1.f;
  const Volume out = fft_convolve(img, delta, Device::CUDA);
  // Float round trip of values <= 2: a few 1e-7 relative.
  CHECK_CLOSE_ARRAYS("delta", img.data.data(), out.data.data(), img.size(), 4e-6, 0.0);

  const Volume ker = random_volume(3, 5, 4, 122, -1.f, 1.f);
  const Volume y = random_volume(8, 15, 12, 123, -1.f, 1.f);
  FftConvolver gpu(8, 15, 12, ker, Device::CUDA);
  const test::AdjointGap g = test::adjoint_gap(gpu, img, y);
  // As in the CPU test: ~1440 float-rounded terms, 1e-5 of sum|terms| is ~100x the rounding.
  CHECK(g.gap <= 1e-5 * g.scale);
}
