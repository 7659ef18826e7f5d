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
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_gpu_math.h"
#include "kernels/error.h"
#include "test_util.h"

namespace {

using namespace isonet;
using namespace isonet::test;
using isonet::gpu::tf32conv::tf32_round;

struct Tf32Case {
  Conv2dShape s;  // math = Tf32
  bool bias, relu;
};

Conv2dShape shape(int n, int c_in, int c_out, int h, int w, int k) {
  Conv2dShape s;
  s.n = n, s.c_in = c_in, s.c_out = c_out, s.h = h, s.w = w, s.k = k;
  s.math = Conv2dMath::Tf32;
  return s;
}

std::string describe(const Conv2dShape& s) {
  return "n=" + std::to_string(s.n) + " c_in=" + std::to_string(s.c_in) + " c_out=" + std::to_string(s.c_out) +
         " h=" + std::to_string(s.h) + " w=" + std::to_string(s.w) + " k=" + std::to_string(s.k);
}

std::vector<Tf32Case> grid_cases() {
  struct Spatial {
    int h, w;
  };
  const Spatial sizes[] = {{1, 1}, {3, 5}, {17, 13}, {33, 31}, {7, 40}, {64, 64}};
  const int pairs[][2] = {{1, 16}, {16, 1}, {3, 33}, {33, 3}, {16, 32}, {96, 64}, {64, 96}, {5, 7}};
  const int batches[] = {1, 2, 3, 16, 5};
  std::vector<Tf32Case> cases;
  int i = 0;
  for (int k : {1, 3, 5, 7, 9, 13}) {
    for (const auto& sp : sizes) {
      const auto& pr = pairs[i % 8];
      int n = batches[i % 5];
      if (n == 16 && double(pr[0]) * pr[1] * sp.h * sp.w * k * k > 4e6) n = 4;  // keep the CPU reference cheap
      cases.push_back({shape(n, pr[0], pr[1], sp.h, sp.w, k), i % 3 != 2, i % 2 == 0});
      ++i;
    }
  }
  return cases;
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

void run_case(const Tf32Case& cc, uint64_t seed) {
  const Conv2dShape& s = cc.s;
  Conv2dShape cpu_s = s;
  cpu_s.math = Conv2dMath::Fp32;
  cpu_s.algo = Conv2dAlgo::Direct;
  const size_t plane = size_t(s.h) * s.w, nx = s.n * s.c_in * plane, ny = s.n * s.c_out * plane;
  const size_t nw = size_t(s.c_out) * s.c_in * s.k * s.k;
  const auto x = random_vector(nx, seed + 1), w = random_vector(nw, seed + 2), b = random_vector(s.c_out, seed + 3),
             g = random_vector(ny, seed + 4);
  const auto xr = rounded(x), wr = rounded(w), gr = rounded(g);
  const auto ax = absolute(x), aw = absolute(w), ab = absolute(b), ag = absolute(g);
  const float* bias = cc.bias ? b.data() : nullptr;
  std::vector<float> cws(cpu::conv2d_workspace_floats(cpu_s));
  std::vector<float> y(ny), y_tf32(ny), y_mag(ny), dx(nx), dx_tf32(nx), dx_mag(nx), dw(nw), dw_tf32(nw), dw_mag(nw),
      db(s.c_out), db_mag(s.c_out);
  cpu::conv2d_forward(cpu_s, x.data(), w.data(), bias, y.data(), cc.relu, cws.data());
  cpu::conv2d_forward(cpu_s, xr.data(), wr.data(), bias, y_tf32.data(), cc.relu, cws.data());
  cpu::conv2d_forward(cpu_s, ax.data(), aw.data(), cc.bias ? ab.data() : nullptr, y_mag.data(), false, cws.data());
  cpu::conv2d_backward_data(cpu_s, g.data(), w.data(), dx.data(), cws.data());
  cpu::conv2d_backward_data(cpu_s, gr.data(), wr.data(), dx_tf32.data(), cws.data());
  cpu::conv2d_backward_data(cpu_s, ag.data(), aw.data(), dx_mag.data(), cws.data());
  cpu::conv2d_backward_weights(cpu_s, x.data(), g.data(), dw.data(), db.data(), cws.data());
  cpu::conv2d_backward_weights(cpu_s, xr.data(), gr.data(), dw_tf32.data(), nullptr, cws.data());
  cpu::conv2d_backward_weights(cpu_s, ax.data(), ag.data(), dw_mag.data(), db_mag.data(), cws.data());

  Guarded<float> dx_in(x), dwt(w), dbias(b), dg(g), dy(ny), dgx(nx), dgw(nw), dgb(s.c_out);
  Guarded<float> ws(std::max<size_t>(gpu::conv2d_workspace_floats(s), 1));
  dy.poison_body();
  dgx.poison_body();
  dgw.poison_body();
  dgb.poison_body();
  ws.poison_body();
  gpu::conv2d_forward(s, dx_in.get(), dwt.get(), cc.bias ? dbias.get() : nullptr, dy.get(), cc.relu, ws.get(), nullptr);
  gpu::conv2d_backward_data(s, dg.get(), dwt.get(), dgx.get(), ws.get(), nullptr);
  gpu::conv2d_backward_weights(s, dx_in.get(), dg.get(), dgw.get(), dgb.get(), ws.get(), nullptr);
  check_tf32("tf32 forward y", y_tf32, y, y_mag, dy.read("y"), double(s.c_in) * s.k * s.k);
  check_tf32("tf32 backward dx", dx_tf32, dx, dx_mag, dgx.read("dx"), double(s.c_out) * s.k * s.k);
  // Backward weights: TF32 for k <= 9 (a reduction over n*h*w pixels), fp32 beyond (tolerance as
  // in test_cuda_ops_parity.cpp); dbias is always the fp32 sum.
  if (s.k <= 9)
    check_tf32("tf32 backward dW", dw_tf32, dw, dw_mag, dgw.read("dW"), double(s.n) * plane);
  else
    check_normalized("backward dW (k > 9: fp32)", dw, dw_mag, dgw.read("dW"), double(s.n) * plane);
  check_normalized("backward dbias (fp32)", db, db_mag, dgb.read("dbias"), double(s.n) * plane);
  ws.read("workspace");  // guards only
}

void check_case(const Tf32Case& cc, uint64_t seed) {
  INFO("tf32 case " << describe(cc.s) << (cc.bias ? " bias" : " no-bias") << (cc.relu ? " relu" : ""));
  CHECK_NOTHROW(run_case(cc, seed));
}

}  // namespace

TEST_CASE("cuda conv tf32: forward (bias/ReLU on and off) and backward data over the shape grid") {
  if (!gpu_or_skip()) return;
  uint64_t seed = 80000;
  for (const Tf32Case& cc : grid_cases()) check_case(cc, seed += 10);
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
