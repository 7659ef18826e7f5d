// test_cuda_conv_tf32.cpp: the CUDA TF32 tensor-core convolution (kernels/conv2d_tf32.cu, selected
// with Conv2dMath::Tf32) against the direct CPU convolution on TF32-rounded operands: forward with
// and without bias and ReLU, backward data, over odd and non-square sizes, k in {1,3,5,7,9,13},
// 1..96 channels, batch 1..16, and IsoNet-2's layers at batch 16; backward weights (k <= 9) the
// same way. Outputs and the workspace sit between sentinel guard regions with a NaN-poisoned body
// (cuda_test_util.h): guards must survive, NaN never passes. dbias and backward weights at k = 13
// stay fp32 and are checked at the fp32 tolerance; Fft ignores the math. Without a GPU every case
// reports itself skipped.
//
// Tolerance (per element, mag = sum |terms|, L = c_in * k * k products; n * h * w for dW):
//   |got - ref_tf32| <= eps * (L/8 + 6 sqrt(L)) * mag
// The products of two TF32 values are exact in fp32, so against the CPU convolution of the same
// rounded operands only the summation differs: the CPU's order (fp32 round to nearest, error
// ~eps sqrt(L) mag, check_normalized's reasoning) and the tensor core's accumulation, which per
// mma instruction adds 8 products to the running sum with truncation rather than rounding
// (Fasi, Higham, Mikaitis, Pranesh, "Numerical behavior of NVIDIA tensor cores", PeerJ CS 2021):
// up to ~1 eps of the running sum per instruction, biased, L/8 instructions. An indexing or
// fragment-layout error is off by whole terms: on the small shapes of the grid (L <= 100) one
// term is >= 1% of mag, three orders above the bound (the host replay,
// test_conv2d_tf32_gpu_math.cpp, checks the indexing term by term). Also checked: within the
// TF32 rounding bound of the unrounded fp32 convolution (2^-10 mag plus the above).
// Built without the CUDA backend (ISONET_CUDA=OFF) the gpu:: entry points this program calls
// do not exist: it reports itself skipped, as on a machine without a GPU.
#include "test_util.h"
#if !ISONET_HAS_CUDA
TEST_CASE("cuda conv tf32: built without the CUDA backend") { CHECK_FALSE(isonet::test::gpu_or_skip()); }
#else

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "conv_test_cases.h"
#include "cuda_test_util.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_gpu.h"
#include "kernels/error.h"
#include "test_util.h"

namespace {

using namespace isonet;
using namespace isonet::test;
using isonet::gpu::tf32conv::tf32_round;

Conv2dShape shape(int n, int c_in, int c_out, int h, int w, int k) {
  Conv2dShape s;
  s.n = n, s.c_in = c_in, s.c_out = c_out, s.h = h, s.w = w, s.k = k;
  s.math = Conv2dMath::Tf32;
  return s;
}

std::vector<float> rounded(std::vector<float> v) {
  for (float& x : v) x = tf32_round(x);
  return v;
}

// The bound of the file comment, with the unrounded reference checked at 2^-10 mag on top.
void check_tf32(const std::string& what, const std::vector<float>& ref_tf32, const std::vector<float>& ref,
                const std::vector<float>& mag, const std::vector<float>& got, double L) {
  REQUIRE(got.size() == ref.size());
  const double unit = FLT_EPSILON * (L / 8 + 6 * std::sqrt(L));
  size_t bad = 0, bad_fp32 = 0;
  double worst = 0;
  std::string first;
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs(double(got[i]) - ref_tf32[i]);
    const bool nan = std::isnan(got[i]);
    if (!nan && mag[i] > 0) worst = std::max(worst, d / (unit * mag[i]));
    if (nan || !(d <= unit * mag[i] + 1e-30)) {
      if (bad++ < 5) first += "  [" + std::to_string(i) + "] ref=" + std::to_string(ref_tf32[i]) + " got=" + std::to_string(got[i]) + "\n";
    }
    bad_fp32 += !(std::fabs(double(got[i]) - ref[i]) <= (0x1p-10 + unit) * mag[i] + 1e-30);
  }
  INFO(what << ": " << bad << " of " << got.size() << " outside eps*(L/8+6 sqrt(L))*mag (L=" << L << "), worst "
            << worst << " of the bound\n"
            << first);
  CHECK(bad == 0);
  CHECK(bad_fp32 == 0);
}

// The case's data with x, w and dy rounded to TF32 (what the tensor cores multiply; bias unrounded).
ConvData rounded(const ConvData& d) { return {rounded(d.x), rounded(d.w), d.b, rounded(d.g)}; }

void run_case(const ConvCase& cc, uint64_t seed) {
  const Conv2dShape& s = cc.s;
  const ConvData d = conv_data(s, seed);
  const ConvResults ref = cpu_conv(cc, d), ref_tf32 = cpu_conv(cc, rounded(d)), mag = cpu_conv_magnitudes(cc, d),
                    got = gpu_conv(cc, d);
  const double pixels = double(s.n) * s.h * s.w;
  check_tf32("tf32 forward y", ref_tf32.y, ref.y, mag.y, got.y, double(s.c_in) * s.k * s.k);
  check_tf32("tf32 backward dx", ref_tf32.dx, ref.dx, mag.dx, got.dx, double(s.c_out) * s.k * s.k);
  // Backward weights: TF32 for k <= 9 (a reduction over n*h*w pixels), fp32 beyond (tolerance as
  // in test_cuda_ops_parity.cpp); dbias is always the fp32 sum.
  if (s.k <= 9)
    check_tf32("tf32 backward dW", ref_tf32.dw, ref.dw, mag.dw, got.dw, pixels);
  else
    check_normalized("backward dW (k > 9: fp32)", ref.dw, mag.dw, got.dw, pixels);
  check_normalized("backward dbias (fp32)", ref.db, mag.db, got.db, pixels);
}

void check_case(const ConvCase& cc, uint64_t seed) {
  INFO("tf32 case " << describe(cc));
  CHECK_NOTHROW(run_case(cc, seed));
}

}  // namespace

TEST_CASE("cuda conv tf32: the mma fragment maps, one m16n8k8 tile of exact integers") {
  if (!gpu_or_skip()) return;
  // Small integers: TF32 holds them exactly and every sum is exact, so the product must match the
  // host's bit for bit. A wrong fragment map (conv2d_gpu_math.h a_row ... c_col) misplaces
  // elements here before it shows as a tolerance failure in the convolutions.
  std::vector<float> a(16 * 8), b(8 * 8), want(16 * 8, 0.f);
  for (int i = 0; i < 16; ++i)
    for (int j = 0; j < 8; ++j) a[i * 8 + j] = float((i * 7 + j * 3) % 11 - 5);
  for (int j = 0; j < 8; ++j)
    for (int n = 0; n < 8; ++n) b[j * 8 + n] = float((j * 5 + n * 2) % 9 - 4);
  for (int i = 0; i < 16; ++i)
    for (int n = 0; n < 8; ++n)
      for (int j = 0; j < 8; ++j) want[i * 8 + n] += a[i * 8 + j] * b[j * 8 + n];
  Guarded<float> da(a), db(b), dc(want.size());
  dc.poison_body();
  gpu::tf32_mma_probe(da.get(), db.get(), dc.get(), nullptr);
  check_bitwise("mma tile", want, dc.read("mma c"));
}

TEST_CASE("cuda conv tf32: forward (bias/ReLU on and off), backward data and weights over the shape grid") {
  if (!gpu_or_skip()) return;
  uint64_t seed = 80000;
  for (const ConvCase& cc : conv_grid({1, 3, 5, 7, 9, 13}, shape(1, 1, 1, 1, 1, 1))) check_case(cc, seed += 10);
}

TEST_CASE("cuda conv tf32: IsoNet-2's layers at batch 16") {
  if (!gpu_or_skip()) return;
  const int layers[][5] = {{1, 16, 128, 128, 7}, {16, 32, 64, 64, 7},   {32, 64, 32, 32, 7},  {96, 32, 64, 64, 7},
                           {64, 32, 64, 64, 7},  {48, 16, 128, 128, 7}, {32, 16, 128, 128, 7}, {16, 1, 128, 128, 1}};
  uint64_t seed = 81000;
  for (const auto& l : layers) check_case({shape(16, l[0], l[1], l[2], l[3], l[4]), true, true}, seed += 10);
}

TEST_CASE("cuda conv tf32: deterministic, differs from fp32, and Fft ignores the math") {
  if (!gpu_or_skip()) return;
  const Conv2dShape s = shape(3, 37, 21, 29, 45, 5);
  const size_t plane = size_t(s.h) * s.w, nx = s.n * s.c_in * plane, ny = s.n * s.c_out * plane;
  const auto x = random_vector(nx, 82001), w = random_vector(size_t(s.c_out) * s.c_in * 25, 82002);
  Conv2dShape fp32 = s, fft = s;
  fp32.math = Conv2dMath::Fp32;
  fft.algo = Conv2dAlgo::Fft;
  Conv2dShape fft32 = fft;
  fft32.math = Conv2dMath::Fp32;
  const size_t wsf = std::max({gpu::conv2d_workspace_floats(s), gpu::conv2d_workspace_floats(fp32),
                               gpu::conv2d_workspace_floats(fft), gpu::conv2d_workspace_floats(fft32)});
  Guarded<float> dx(x), dw(w), ws(wsf), a(ny), b(ny), c(ny), d(ny), e(ny);
  for (auto* buf : {&a, &b, &c, &d, &e}) buf->poison_body();
  gpu::conv2d_forward(s, dx.get(), dw.get(), nullptr, a.get(), false, ws.get(), nullptr);
  gpu::conv2d_forward(s, dx.get(), dw.get(), nullptr, b.get(), false, ws.get(), nullptr);
  gpu::conv2d_forward(fp32, dx.get(), dw.get(), nullptr, c.get(), false, ws.get(), nullptr);
  gpu::conv2d_forward(fft, dx.get(), dw.get(), nullptr, d.get(), false, ws.get(), nullptr);
  gpu::conv2d_forward(fft32, dx.get(), dw.get(), nullptr, e.get(), false, ws.get(), nullptr);
  const auto ra = a.read("tf32 1"), rb = b.read("tf32 2"), rc = c.read("fp32"), rd = d.read("fft tf32"),
             re = e.read("fft fp32");
  check_bitwise("tf32 run to run", ra, rb);
  check_bitwise("Fft: math ignored", re, rd);
  size_t differ = 0;
  for (size_t i = 0; i < ra.size(); ++i) differ += !same_bits(ra[i], rc[i]);
  CHECK(differ > ra.size() / 2);  // TF32 rounding shows in most outputs (925 terms each)
}

#endif  // ISONET_HAS_CUDA
