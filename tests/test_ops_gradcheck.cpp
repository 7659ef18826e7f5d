// test_ops_gradcheck.cpp: every CPU backward checked against central finite differences of its
// forward (gradcheck.h). Scalar: L = sum r*y with a fixed random r (so the analytic pass gets
// dy = r), or the PSNR loss itself. Shapes have odd sizes, batch > 1 and 1..96 channels.
//
// Why central differences can be tight here: conv, upsample, concat, add and dropout are LINEAR in
// the checked input, and max pooling and ReLU are linear as long as the step does not cross a
// tie or a kink (inputs are built so it cannot). For a linear L, (L(x+h) - L(x-h)) / 2h is the
// exact derivative for ANY h, so we take a large h (0.5) and the only error left is float rounding
// of the forward outputs divided by 2h. Only the PSNR loss is genuinely nonlinear.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "gradcheck.h"
#include "kernels/add.h"
#include "kernels/concat.h"
#include "kernels/conv2d.h"
#include "kernels/dropout.h"
#include "kernels/maxpool2d.h"
#include "kernels/psnr_loss.h"
#include "kernels/relu.h"
#include "kernels/upsample2d.h"
#include "test_util.h"

using namespace isonet;
using test::check_gradient;
using test::FdCheck;
using test::random_vector;
using test::weighted_sum;

namespace {
// Step and tolerances for the linear ops (see the file comment). Outputs are O(1) (conv weights
// are scaled by 1/sqrt(fan-in)); each forward output carries float rounding ~1e-7 relative, and
// the outputs a single input reaches (up to ~900 here: c_out*k*k for x, n*h*w for a weight) add
// random-sign errors of ~sqrt(900) * 1e-7 = 3e-6 to L, i.e. ~3e-6 after dividing by 2h = 1
// (measured: at most 2.9e-6). atol 2e-5 and rtol 1e-4 leave ~7x margin, while a missing or
// misplaced term in a backward changes the gradient by O(0.01..1).
const FdCheck kLinear{0.5, 2e-5, 1e-4};
}  // namespace

TEST_CASE("gradcheck conv2d: data, weights and bias over channels 1..96 and k = 1, 3, 5, 7, 9") {
  // (n, c_in, c_out, h, w, k): every channel count of {1, 3, 16, 33, 96} appears on both sides,
  // combined sparingly so the whole case runs in well under a second. k = 1 and 9 take the
  // im2col + sgemm path, k = 3, 5, 7 the direct kernels (AVX2 builds).
  const Conv2dShape shapes[] = {
      {2, 1, 16, 9, 11, 7}, {3, 3, 1, 7, 5, 3},   {2, 16, 33, 5, 7, 5}, {2, 33, 3, 7, 5, 1},
      {2, 96, 16, 5, 7, 7}, {2, 3, 96, 5, 3, 3}, {2, 3, 5, 7, 11, 9},
  };
  uint64_t seed = 1;
  for (const Conv2dShape& s : shapes) {
    CAPTURE(s.c_in);
    CAPTURE(s.c_out);
    CAPTURE(s.k);
    test::check_conv2d_gradients("conv2d", s, kLinear, seed);
  }
}

TEST_CASE("gradcheck maxpool2d: gradient reaches only the window maxima (odd sizes, floor)") {
  Pool2dShape s{3, 5, 9, 7};
  const size_t nx = size_t(s.n) * s.c * s.h * s.w, ny = size_t(s.n) * s.c * s.out_h() * s.out_w();
  // Distinct values 0.01 apart, shuffled: within a window the max leads by >= 0.01, so a step of
  // 2e-3 never changes the argmax and L stays linear in x; a non-maximum element stays below the
  // max, so its FD is exactly 0. The outputs are selections (no rounding) and L is summed in
  // double, so the FD is exact up to double rounding and its float storage (6e-8 relative):
  // atol = rtol = 1e-5.
  std::vector<float> x(nx);
  for (size_t i = 0; i < nx; ++i) x[i] = 0.01f * float(i);
  std::shuffle(x.begin(), x.end(), std::mt19937_64(31));
  auto r = random_vector(ny, 32);
  std::vector<float> y(ny), dx(nx);
  std::vector<int32_t> arg(ny);
  cpu::maxpool2d_forward(s, x.data(), y.data(), arg.data());
  cpu::maxpool2d_backward(s, r.data(), arg.data(), dx.data());
  auto loss = [&] {
    cpu::maxpool2d_forward(s, x.data(), y.data(), arg.data());
    return weighted_sum(r, y);
  };
  // More samples than elsewhere: 3/4 of the elements have gradient 0, a quarter carry it.
  check_gradient("maxpool2d dx", x, dx, loss, FdCheck{2e-3, 1e-5, 1e-5, 200}, 33);
}

TEST_CASE("gradcheck upsample2d, concat and add") {
  Upsample2dShape us{3, 5, 7, 9};
  const size_t nx = size_t(us.n) * us.c * us.h * us.w;
  auto x = random_vector(nx, 41), r = random_vector(4 * nx, 42);
  std::vector<float> y(4 * nx), dx(nx);
  cpu::upsample2d_backward(us, r.data(), dx.data());
  check_gradient("upsample2d dx", x, dx,
                 [&] {
                   cpu::upsample2d_forward(us, x.data(), y.data());
                   return weighted_sum(r, y);
                 },
                 kLinear, 43);

  ConcatShape cs{3, 3, 16, 5, 7};
  const size_t plane = 35, na = size_t(cs.n) * cs.c_a * plane, nb = size_t(cs.n) * cs.c_b * plane;
  auto a = random_vector(na, 44), b = random_vector(nb, 45), rc = random_vector(na + nb, 46);
  std::vector<float> yc(na + nb), da(na), db(nb);
  cpu::concat_backward(cs, rc.data(), da.data(), db.data());
  auto concat_loss = [&] {
    cpu::concat_forward(cs, a.data(), b.data(), yc.data());
    return weighted_sum(rc, yc);
  };
  check_gradient("concat da", a, da, concat_loss, kLinear, 47);
  check_gradient("concat db", b, db, concat_loss, kLinear, 48);

  // y = a + b: the backward is dy itself for both inputs (add.h: no kernel), i.e. dL/da = r.
  const size_t n = 3 * 7 * 11;
  auto aa = random_vector(n, 49), bb = random_vector(n, 50), ra = random_vector(n, 51);
  std::vector<float> ya(n);
  auto add_loss = [&] {
    cpu::add_forward(aa.data(), bb.data(), ya.data(), n);
    return weighted_sum(ra, ya);
  };
  check_gradient("add da", aa, ra, add_loss, kLinear, 52);
  check_gradient("add db", bb, ra, add_loss, kLinear, 53);
}

TEST_CASE("gradcheck relu: backward from the forward output, away from the kink") {
  const size_t n = 3 * 5 * 7 * 9;
  // |x| in [0.05, 1] with random sign: a step of 0.01 never crosses 0, so L is linear near x.
  auto mag = random_vector(n, 61, 0.05f, 1.f), sign = random_vector(n, 62);
  std::vector<float> x(n);
  for (size_t i = 0; i < n; ++i) x[i] = sign[i] < 0 ? -mag[i] : mag[i];
  auto r = random_vector(n, 63);
  std::vector<float> y(n), dx(n);
  cpu::relu_forward(x.data(), y.data(), n);
  cpu::relu_backward(r.data(), y.data(), dx.data(), n);
  // y is x or 0 exactly (no rounding) and L is summed in double: the FD is exact up to its float
  // storage (6e-8 relative), so atol = rtol = 1e-5.
  check_gradient("relu dx", x, dx,
                 [&] {
                   cpu::relu_forward(x.data(), y.data(), n);
                   return weighted_sum(r, y);
                 },
                 FdCheck{0.01, 1e-5, 1e-5, 80}, 64);
}

TEST_CASE("gradcheck dropout: the backward applies the forward's mask and scale") {
  const size_t n = 5 * 7 * 9 * 3;
  auto x = random_vector(n, 71), r = random_vector(n, 72);
  std::vector<float> y(n), dx(n);
  for (float p : {0.2f, 0.5f}) {
    CAPTURE(p);
    DropoutParams d{p, 99, 5};
    cpu::dropout_backward(d, r.data(), dx.data(), n);
    // If the backward drew another mask, about half of the sampled entries would disagree.
    check_gradient("dropout dx", x, dx,
                   [&] {
                     cpu::dropout_forward(d, x.data(), y.data(), n);
                     return weighted_sum(r, y);
                   },
                   FdCheck{0.5, 2e-5, 1e-4, 120}, 73);
  }
}

TEST_CASE("gradcheck psnr loss: dL/dpred of the batch-mean PSNR loss") {
  for (PsnrLossShape s : {PsnrLossShape{3, 15}, PsnrLossShape{2, 63}}) {
    CAPTURE(s.per_patch);
    const size_t n = s.n * s.per_patch;
    auto t = random_vector(n, 81, 0.f, 1.f), noise = random_vector(n, 82, -0.5f, 0.5f);
    std::vector<float> pred(n), dpred(n);
    for (size_t i = 0; i < n; ++i) pred[i] = t[i] + noise[i];
    // S_p = sum of squared errors of patch p (= per_patch * mse_p); its minimum sets the bound below.
    double s_min = INFINITY;
    for (int p = 0; p < s.n; ++p) {
      double sp = 0;
      for (size_t i = 0; i < s.per_patch; ++i) sp += double(noise[p * s.per_patch + i]) * noise[p * s.per_patch + i];
      s_min = std::min(s_min, sp);
    }
    cpu::psnr_loss_backward(s, pred.data(), t.data(), dpred.data());
    float l0 = 0;
    cpu::psnr_loss_forward(s, pred.data(), t.data(), &l0, nullptr);
    // L depends on pred_i through log(S + 2 d h + h^2) (d = pred_i - t_i). Expanding the central
    // difference gives the exact derivative times 1 - h^2/S + (4/3) d^2 h^2 / S^2 + O(h^4), so the
    // truncation error is at most ~(4/3) h^2 / S relative (d^2 <= S); rtol = 2 h^2 / S_min + 1e-5
    // (the 1e-5 for the float gradient: a float coefficient times a float difference). With
    // h = 1e-2 and S_min ~ 1 that is ~2e-4.
    // The loss comes back as a float: each evaluation is off by up to half an ulp of |L|, so the
    // FD is off by up to ulp(|L|) / (2h); atol is twice that (~1e-4 for |L| ~ 20 dB).
    const double ulp = std::nextafter(std::fabs(l0), std::numeric_limits<float>::infinity()) - std::fabs(l0);
    const double h = 1e-2;
    float l = 0;
    check_gradient("psnr dpred", pred, dpred,
                   [&] {
                     cpu::psnr_loss_forward(s, pred.data(), t.data(), &l, nullptr);
                     return double(l);
                   },
                   FdCheck{h, 2 * ulp / (2 * h), 2 * h * h / s_min + 1e-5, 60}, 83);
  }
}
