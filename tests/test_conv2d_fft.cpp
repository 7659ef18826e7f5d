// test_conv2d_fft.cpp: the CPU frequency-domain convolution (kernels/conv2d_fft.h) against the
// direct path (itself checked against naive double loops in test_ops_cpu.cpp), both forced via
// Conv2dShape::algo: forward (with/without bias and ReLU), backward data, backward weights and
// dbias over odd, non-square sizes, every kernel size, channels 1..96 and batch 1..5; a
// finite-difference check of the FFT path's gradients; what Auto picks; bad input.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gradcheck.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_fft.h"
#include "kernels/error.h"
#include "test_util.h"

using namespace isonet;
using test::poison_value;
using test::random_vector;

namespace {

std::vector<float> poisoned(size_t count) { return std::vector<float>(count, poison_value()); }

float peak(const std::vector<float>& v) {
  float m = 0.f;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

struct Outputs {
  std::vector<float> y, dx, dw, db;
};

// Runs the three passes of shape s with algorithm a on fresh NaN-poisoned outputs and workspace.
Outputs run(Conv2dShape s, Conv2dAlgo a, const std::vector<float>& x, const std::vector<float>& w, const float* bias,
            bool relu, const std::vector<float>& dy) {
  s.algo = a;
  const size_t nx = size_t(s.n) * s.c_in * s.h * s.w, ny = size_t(s.n) * s.c_out * s.h * s.w;
  const size_t nw = size_t(s.c_out) * s.c_in * s.k * s.k;
  Outputs o{poisoned(ny), poisoned(nx), poisoned(nw), poisoned(s.c_out)};
  // Poisoned workspace: any scratch read before it is written turns outputs into NaN.
  auto ws = poisoned(cpu::conv2d_workspace_floats(s));
  cpu::conv2d_forward(s, x.data(), w.data(), bias, o.y.data(), relu, ws.data());
  cpu::conv2d_backward_data(s, dy.data(), w.data(), o.dx.data(), ws.data());
  cpu::conv2d_backward_weights(s, x.data(), dy.data(), o.dw.data(), o.db.data(), ws.data());
  return o;
}

// Shapes of the comparison grid: odd and non-square sizes 1..70 (with 64 and 70 themselves),
// every k in {1,3,5,7,9}, channels 1..96 and batch 1..5, drawn from a fixed seed; a shape is
// kept only while the direct reference stays under 6e7 multiply-adds (so the grid runs in a few
// seconds). A few hand-picked shapes add the extremes (1x1 planes, planes smaller than k, the
// widest channel counts, the multi-threaded size class, sides past 512).
std::vector<Conv2dShape> grid() {
  std::vector<Conv2dShape> shapes = {
      {1, 1, 1, 1, 1, 1},   {2, 3, 2, 1, 1, 9},    {1, 2, 3, 1, 70, 5},  {2, 1, 4, 70, 1, 7},
      {1, 96, 96, 3, 5, 3}, {5, 96, 1, 9, 7, 9},   {3, 1, 96, 11, 8, 5}, {2, 4, 5, 64, 64, 7},
      {4, 48, 16, 33, 31, 7}, {16, 32, 16, 16, 16, 7},
      {1, 2, 3, 2, 515, 3},   {2, 3, 2, 600, 3, 5},  // past the table of FFTW lengths (512)
  };
  std::mt19937_64 rng(20261123);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  const int ks[] = {1, 3, 5, 7, 9};
  while (shapes.size() < 60) {
    Conv2dShape s{pick(1, 5), pick(1, 96), pick(1, 96), pick(1, 70), pick(1, 70), ks[pick(0, 4)]};
    const double macs = double(s.n) * s.c_in * s.c_out * s.h * s.w * s.k * s.k;
    if (macs <= 6e7) shapes.push_back(s);
  }
  return shapes;
}

}  // namespace

TEST_CASE("conv2d fft: forward, backward data, backward weights and dbias match the direct path") {
  int index = 0;
  for (const Conv2dShape& s : grid()) {
    CAPTURE(s.n);
    CAPTURE(s.c_in);
    CAPTURE(s.c_out);
    CAPTURE(s.h);
    CAPTURE(s.w);
    CAPTURE(s.k);
    const uint64_t seed = 100 + 10 * index;
    const bool with_bias = index % 2 == 0, relu = index % 3 != 0;  // all four combinations occur
    ++index;
    const size_t nx = size_t(s.n) * s.c_in * s.h * s.w, ny = size_t(s.n) * s.c_out * s.h * s.w;
    const size_t nw = size_t(s.c_out) * s.c_in * s.k * s.k;
    auto x = random_vector(nx, seed), w = random_vector(nw, seed + 1), b = random_vector(s.c_out, seed + 2);
    auto dy = random_vector(ny, seed + 3);
    const float* bias = with_bias ? b.data() : nullptr;
    const Outputs ref = run(s, Conv2dAlgo::Direct, x, w, bias, relu, dy);
    const Outputs fft = run(s, Conv2dAlgo::Fft, x, w, bias, relu, dy);
    // Tolerance, relative to each output's scale (its largest magnitude): the FFT path rounds
    // in the transforms (error ~ eps * log2(points) of a spectrum's magnitude, eps = 6e-8),
    // in the per-bin sums over R terms (R = c_in, c_out or n: a random walk, sqrt(R)), and in
    // the inverse; the direct path rounds its own sums of K = c*k*k products. We allow
    // 4 * eps * (log2(points) + sqrt(R) + sqrt(K)) * scale: measured errors are at most ~1/6
    // of it, while a wrong or missing term is O(1e-2) of the scale or more. dbias is the
    // same double-accumulated sum on both paths: 1e-6 relative.
    const Conv2dFftSize p = conv2d_fft_size(s);
    const double eps = 6e-8, lg = std::log2(double(p.ph) * p.pw);
    const double kk = double(s.k) * s.k;
    auto tol = [&](double R, double K, const std::vector<float>& r) {
      return std::max(1e-6, 4 * eps * (lg + std::sqrt(R) + std::sqrt(K)) * peak(r));
    };
    CHECK_CLOSE_ARRAYS("fft y", ref.y.data(), fft.y.data(), ny, tol(s.c_in, s.c_in * kk, ref.y), 0.0);
    CHECK_CLOSE_ARRAYS("fft dx", ref.dx.data(), fft.dx.data(), nx, tol(s.c_out, s.c_out * kk, ref.dx), 0.0);
    CHECK_CLOSE_ARRAYS("fft dweight", ref.dw.data(), fft.dw.data(), nw,
                       tol(s.n, double(s.n) * s.h * s.w, ref.dw), 0.0);
    CHECK_CLOSE_ARRAYS("fft dbias", ref.db.data(), fft.db.data(), size_t(s.c_out), 1e-6 * peak(ref.db), 1e-6);
  }
}

TEST_CASE("conv2d fft: finite-difference gradients of the FFT path") {
  using test::FdCheck;
  // L = sum r*y is linear in x, w and b, so central differences are exact up to the forward's
  // rounding: |dL| error ~ eps * |L| terms / (2*step). With y = O(1) (weights scaled by
  // 1/sqrt(c_in*k*k)), |L| <= ~sqrt(ny), step 0.5: ~1e-6. atol 3e-5 and rtol 1e-4 as in
  // test_ops_gradcheck.cpp's kLinear (the FFT's extra rounding is ~log2(points) * eps).
  const FdCheck check{0.5, 3e-5, 1e-4};
  const Conv2dShape shapes[] = {{2, 3, 4, 9, 11, 7}, {1, 5, 2, 6, 13, 3}, {3, 2, 3, 5, 4, 9}, {2, 4, 4, 7, 7, 1}};
  uint64_t seed = 7;
  for (Conv2dShape s : shapes) {
    s.algo = Conv2dAlgo::Fft;
    CAPTURE(s.k);
    test::check_conv2d_gradients("fft", s, check, seed);  // s.algo = Fft: the dispatch runs the FFT path
  }
}

TEST_CASE("conv2d fft: the workspace may start at any float offset, results do not depend on it") {
  // The FFT path aligns its scratch itself (FFTW's new-array execute needs the planning alignment).
  Conv2dShape s{2, 5, 3, 13, 17, 5, Conv2dAlgo::Fft};
  auto x = random_vector(size_t(2) * 5 * 13 * 17, 1), w = random_vector(size_t(3) * 5 * 25, 2);
  auto b = random_vector(3, 3);
  const size_t ny = size_t(2) * 3 * 13 * 17, wsf = cpu::conv2d_workspace_floats(s);
  std::vector<float> ws(wsf + 16), y0(ny), y1(ny);
  cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y0.data(), true, ws.data());
  for (int offset = 1; offset < 16; offset += 5) {
    CAPTURE(offset);
    std::fill(y1.begin(), y1.end(), poison_value());
    cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y1.data(), true, ws.data() + offset);
    CHECK(std::equal(y0.begin(), y0.end(), y1.begin()));
  }
}

TEST_CASE("conv2d fft: results do not depend on the thread count") {
  // Large enough for the whole team (conv2d_cpu.h); computed once normally and once from inside
  // an OpenMP region, where the conv's own region is nested, hence inactive: one thread. On a
  // 1-core machine both runs use one thread and the check is vacuous.
  Conv2dShape s{4, 24, 20, 37, 41, 7, Conv2dAlgo::Fft};
  const size_t nx = size_t(s.n) * s.c_in * s.h * s.w, ny = size_t(s.n) * s.c_out * s.h * s.w;
  const size_t nw = size_t(s.c_out) * s.c_in * s.k * s.k;
  auto x = random_vector(nx, 41), w = random_vector(nw, 42), b = random_vector(s.c_out, 43), dy = random_vector(ny, 44);
  auto run_all = [&](Outputs& o) {
    std::vector<float> ws(cpu::conv2d_workspace_floats(s));
    o = {std::vector<float>(ny), std::vector<float>(nx), std::vector<float>(nw), std::vector<float>(s.c_out)};
    cpu::conv2d_forward(s, x.data(), w.data(), b.data(), o.y.data(), true, ws.data());
    cpu::conv2d_backward_data(s, dy.data(), w.data(), o.dx.data(), ws.data());
    cpu::conv2d_backward_weights(s, x.data(), dy.data(), o.dw.data(), o.db.data(), ws.data());
  };
  Outputs team, single;
  run_all(team);
#pragma omp parallel num_threads(2)
  {
#pragma omp single
    run_all(single);
  }
  CHECK(team.y == single.y);
  CHECK(team.dx == single.dx);
  CHECK(team.dw == single.dw);
  CHECK(team.db == single.db);
}

TEST_CASE("conv2d fft: Auto picks FFT for IsoNet-2's wide 7x7 layers at batch 16, direct for tiny shapes") {
  // IsoNet-2 at a training batch of 16 x 128^2 (nn/README.md): dec2 96->32 and enc2 at 64x64,
  // dec1 48->16 at 128x128, mid 32->64 at 32x32: the measured FFT speedups are 1.4-2.6x
  // (bench/results/2026-11-23_cpu_conv_fft.md), so the model must choose FFT.
  const Conv2dShape fft_shapes[] = {
      {16, 96, 32, 64, 64, 7}, {16, 48, 16, 128, 128, 7}, {16, 16, 32, 64, 64, 7}, {16, 32, 64, 32, 32, 7}};
  for (const Conv2dShape& s : fft_shapes) {
    CAPTURE(s.c_in);
    CAPTURE(s.h);
    CHECK(cpu::conv2d_fft_preferred(s));
  }
  // Direct: the shapes of test_ops_cpu.cpp / test_ops_gradcheck.cpp / test_torch_reference.cpp
  // (tiny planes, few channels, batch <= 3), 1x1 convs (no spatial sum to save), the 1-channel
  // output layers, IsoNet-2's enc1 and IsoNet-1's 9x9 conv1 at batch 16 (1 input channel: the
  // transforms of 16+ output planes cost more than the direct sums; measured 2x slower).
  const Conv2dShape direct_shapes[] = {
      {3, 1, 16, 9, 11, 7}, {2, 3, 5, 7, 9, 3},   {2, 16, 33, 5, 7, 5}, {2, 96, 16, 5, 7, 7},
      {2, 3, 96, 5, 3, 3},  {2, 3, 5, 7, 11, 9},  {1, 1, 1, 1, 1, 1},   {2, 1, 16, 16, 16, 7},
      {2, 16, 32, 8, 8, 7}, {16, 16, 1, 128, 128, 1}, {16, 96, 96, 64, 64, 1}, {1, 32, 1, 128, 128, 5},
      {16, 1, 16, 128, 128, 7}, {16, 1, 64, 128, 128, 9}, {16, 32, 1, 128, 128, 5},
  };
  for (const Conv2dShape& s : direct_shapes) {
    CAPTURE(s.n);
    CAPTURE(s.c_in);
    CAPTURE(s.c_out);
    CAPTURE(s.h);
    CAPTURE(s.k);
    CHECK_FALSE(cpu::conv2d_fft_preferred(s));
  }
  // Memory cap: dec2 at batch 16 on 256x256 planes would be fastest by FFT (like at 64x64) but
  // its spectra need ~1.5 GB, over the 512 MiB Auto allows (conv2d_fft.cpp): direct.
  const Conv2dShape big{16, 96, 32, 256, 256, 7};
  CHECK(double(cpu::conv2d_fft_workspace_floats(big)) * sizeof(float) > 512.0 * (1 << 20));
  CHECK_FALSE(cpu::conv2d_fft_preferred(big));
  // Auto's workspace covers the chosen algorithm: the FFT one for an FFT shape.
  const Conv2dShape dec2{16, 96, 32, 64, 64, 7};
  CHECK(cpu::conv2d_workspace_floats(dec2) == cpu::conv2d_fft_workspace_floats(dec2));
}

TEST_CASE("conv2d fft: bad input gives a clear error") {
  Conv2dShape s{2, 3, 4, 5, 7, 3, Conv2dAlgo::Fft};
  std::vector<float> x(2 * 3 * 35), w(4 * 3 * 9), y(2 * 4 * 35), ws(cpu::conv2d_fft_workspace_floats(s));
  CHECK_THROWS_WITH_AS(cpu::conv2d_forward(s, x.data(), w.data(), nullptr, y.data(), false, nullptr),
                       doctest::Contains("conv2d_fft_forward: workspace is a null pointer"), Error);
  CHECK_THROWS_WITH_AS(cpu::conv2d_fft_backward_data(s, nullptr, w.data(), x.data(), ws.data()),
                       doctest::Contains("conv2d_fft_backward_data: dy is a null pointer"), Error);
  CHECK_THROWS_WITH_AS(cpu::conv2d_fft_backward_weights(s, x.data(), y.data(), nullptr, nullptr, ws.data()),
                       doctest::Contains("conv2d_fft_backward_weights: dweight is a null pointer"), Error);
  CHECK_THROWS_WITH_AS(cpu::conv2d_fft_forward(s, x.data(), nullptr, nullptr, y.data(), false, ws.data()),
                       doctest::Contains("weight is a null pointer"), Error);
  Conv2dShape even = s;
  even.k = 4;
  CHECK_THROWS_WITH_AS(cpu::conv2d_fft_forward(even, x.data(), w.data(), nullptr, y.data(), false, ws.data()),
                       doctest::Contains("kernel size must be odd"), Error);
  CHECK_THROWS_AS(cpu::conv2d_fft_workspace_floats(even), Error);
  CHECK_THROWS_AS(cpu::conv2d_fft_preferred(even), Error);
  Conv2dShape zero = s;
  zero.h = 0;
  CHECK_THROWS_WITH_AS(cpu::conv2d_backward_data(zero, y.data(), w.data(), x.data(), ws.data()),
                       doctest::Contains("sizes must be positive"), Error);
  Conv2dShape bad = s;
  bad.algo = static_cast<Conv2dAlgo>(7);
  CHECK_THROWS_WITH_AS(cpu::conv2d_workspace_floats(bad), doctest::Contains("unknown Conv2dAlgo"), Error);
  // A workspace pointer that is not even float-aligned.
  float* misaligned = reinterpret_cast<float*>(reinterpret_cast<char*>(ws.data()) + 1);
  CHECK_THROWS_WITH_AS(cpu::conv2d_fft_forward(s, x.data(), w.data(), nullptr, y.data(), false, misaligned),
                       doctest::Contains("not aligned"), Error);
}
