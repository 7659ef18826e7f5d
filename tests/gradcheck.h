// gradcheck.h: central finite-difference check of an analytic gradient, used for every op with a
// backward (test_ops_gradcheck.cpp; the FFT convolution in test_conv2d_fft.cpp). The caller
// provides the scalar loss as a function of the input array (usually L = sum r*y with a fixed
// random r, so dL/dy = r) and the analytic dL/dinput.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "test_util.h"

namespace isonet::test {

struct FdCheck {
  double step;     // central-difference step h (per op, with its reason at the call site)
  double atol;     // |fd - analytic| <= atol + rtol*|fd|
  double rtol;
  int samples = 40;  // indices checked per tensor (all of them when the tensor is smaller)
};

// L = sum_i r_i y_i, accumulated in double so the loss itself adds no float rounding.
inline double weighted_sum(const std::vector<float>& r, const std::vector<float>& y) {
  double s = 0.0;
  for (size_t i = 0; i < r.size(); ++i) s += double(r[i]) * double(y[i]);
  return s;
}

// Perturbs input[i] by +-step at `samples` random indices (restoring it afterwards), estimates
// dL/dinput[i] = (L(x+) - L(x-)) / (x+ - x-) and compares it with analytic[i]. The denominator
// uses the perturbed values as actually stored in float, so the step's own rounding is no error.
inline void check_gradient(const std::string& what, std::vector<float>& input, const std::vector<float>& analytic,
                           const std::function<double()>& loss, const FdCheck& c, uint64_t seed) {
  REQUIRE(analytic.size() == input.size());
  std::vector<size_t> idx;
  if (input.size() <= size_t(c.samples)) {
    for (size_t i = 0; i < input.size(); ++i) idx.push_back(i);
  } else {
    std::mt19937_64 rng(seed);
    std::uniform_int_distribution<size_t> pick(0, input.size() - 1);
    for (int s = 0; s < c.samples; ++s) idx.push_back(pick(rng));
  }
  std::vector<float> fd, got;
  for (size_t i : idx) {
    const float x0 = input[i];
    const float xp = static_cast<float>(x0 + c.step), xm = static_cast<float>(x0 - c.step);
    input[i] = xp;
    const double lp = loss();
    input[i] = xm;
    const double lm = loss();
    input[i] = x0;
    fd.push_back(static_cast<float>((lp - lm) / (double(xp) - double(xm))));
    got.push_back(analytic[i]);
  }
  CHECK_CLOSE_ARRAYS(what, fd.data(), got.data(), fd.size(), c.atol, c.rtol);
}

// The CPU convolution's three gradients (dx, dweight, dbias) of L = sum r*y for shape s, through
// the cpu::conv2d_* dispatch (so s.algo picks the path checked), with weights scaled by
// 1/sqrt(c_in*k*k) so that y = O(1). The data and sample seeds are drawn from `seed` in order;
// the checks are named "<what> dx" etc.
inline void check_conv2d_gradients(const std::string& what, const Conv2dShape& s, const FdCheck& check,
                                   uint64_t& seed) {
  const size_t nx = size_t(s.n) * s.c_in * s.h * s.w, ny = size_t(s.n) * s.c_out * s.h * s.w;
  const size_t nw = size_t(s.c_out) * s.c_in * s.k * s.k;
  const float wscale = 1.f / std::sqrt(float(s.c_in * s.k * s.k));
  auto x = random_vector(nx, ++seed), w = random_vector(nw, ++seed, -wscale, wscale);
  auto b = random_vector(s.c_out, ++seed), r = random_vector(ny, ++seed);
  std::vector<float> ws(cpu::conv2d_workspace_floats(s)), y(ny), dx(nx), dw(nw), db(s.c_out);
  cpu::conv2d_backward_data(s, r.data(), w.data(), dx.data(), ws.data());
  cpu::conv2d_backward_weights(s, x.data(), r.data(), dw.data(), db.data(), ws.data());
  auto loss = [&] {
    cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data(), false, ws.data());
    return weighted_sum(r, y);
  };
  check_gradient(what + " dx", x, dx, loss, check, ++seed);
  check_gradient(what + " dweight", w, dw, loss, check, ++seed);
  check_gradient(what + " dbias", b, db, loss, check, ++seed);
}

}  // namespace isonet::test
