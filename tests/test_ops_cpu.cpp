// test_ops_cpu.cpp: forward correctness of the CPU twins (kernels/*.cpp) against naive loops in
// double and hand-computed values, edge cases (NaN, ties, odd sizes, aliasing, tiny planes) and the
// error messages of bad input. Gradients are checked by finite differences in test_ops_gradcheck.cpp.
#include <cmath>
#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/adam.h"
#include "kernels/add.h"
#include "kernels/concat.h"
#include "kernels/conv2d.h"
#include "kernels/dropout.h"
#include "kernels/error.h"
#include "kernels/maxpool2d.h"
#include "kernels/psnr_loss.h"
#include "kernels/relu.h"
#include "kernels/rng.h"
#include "kernels/upsample2d.h"
#include "test_util.h"

using namespace isonet;
using test::poison_value;
using test::random_vector;

namespace {

const float kNaN = std::numeric_limits<float>::quiet_NaN();

std::vector<float> poisoned(size_t count) { return std::vector<float>(count, poison_value()); }

// Naive 'same' cross-correlation and its adjoints, in double, straight from the formula in conv2d.h.
struct ConvReference {
  std::vector<float> y, dx, dw, db;
};

ConvReference conv_reference(const Conv2dShape& s, const std::vector<float>& x, const std::vector<float>& w,
                             const float* bias, bool relu, const std::vector<float>& dy) {
  const int p = s.k / 2;
  std::vector<double> y(size_t(s.n) * s.c_out * s.h * s.w), dx(x.size(), 0.0), dw(w.size(), 0.0),
      db(s.c_out, 0.0);
  auto xi = [&](int n, int c, int i, int j) { return ((size_t(n) * s.c_in + c) * s.h + i) * s.w + j; };
  auto wi = [&](int o, int c, int u, int v) { return ((size_t(o) * s.c_in + c) * s.k + u) * s.k + v; };
  for (int n = 0; n < s.n; ++n)
    for (int o = 0; o < s.c_out; ++o)
      for (int i = 0; i < s.h; ++i)
        for (int j = 0; j < s.w; ++j) {
          const size_t yi = ((size_t(n) * s.c_out + o) * s.h + i) * s.w + j;
          double acc = bias ? bias[o] : 0.0;
          for (int c = 0; c < s.c_in; ++c)
            for (int u = 0; u < s.k; ++u)
              for (int v = 0; v < s.k; ++v) {
                const int ii = i + u - p, jj = j + v - p;
                if (ii < 0 || jj < 0 || ii >= s.h || jj >= s.w) continue;
                acc += double(w[wi(o, c, u, v)]) * x[xi(n, c, ii, jj)];
                dx[xi(n, c, ii, jj)] += double(w[wi(o, c, u, v)]) * dy[yi];
                dw[wi(o, c, u, v)] += double(x[xi(n, c, ii, jj)]) * dy[yi];
              }
          y[yi] = relu && acc < 0 ? 0.0 : acc;
          db[o] += dy[yi];
        }
  auto to_float = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  return {to_float(y), to_float(dx), to_float(dw), to_float(db)};
}

}  // namespace

// ---------------------------------------------------------------------------------------------- conv2d

TEST_CASE("conv2d: forward and both backward passes match naive double loops") {
  struct Case {
    Conv2dShape s;
    bool bias, relu;
  };
  // Odd sizes (w % 8 != 0 for the AVX2 kernels' column tails), batch > 1, every kernel size the
  // models use, planes smaller than the kernel, c_out not a multiple of 16 (the direct kernels'
  // channel block). k = 3, 5, 7 run the direct kernels (when built with AVX2), k = 1 and k = 9 the
  // im2col + sgemm path. Three shapes are large enough (>= 2^24 multiply-adds) to run on the
  // whole OpenMP team, and cut into several row tiles: {96 channels, w 130, k 7}: 3 direct-kernel
  // tiles of 3 rows; {16 channels, w 130, k 9}: 9 im2col tiles of 1 row; and a 1x1 with 96 channels.
  // c_out = 1 forward (and the backward data of c_in = 1) runs the direct kernels' single-channel
  // row loop: {32 -> 1, w 130, k 5} also cuts it into 2 row tiles with a 2-column tail.
  const Case cases[] = {
      {{3, 1, 16, 9, 11, 7}, true, false},  {{2, 3, 5, 7, 9, 3}, false, true},    {{2, 16, 33, 5, 7, 5}, true, true},
      {{3, 33, 3, 5, 7, 1}, true, false},   {{2, 4, 3, 2, 3, 7}, true, false},    {{2, 96, 6, 9, 130, 7}, true, true},
      {{2, 16, 8, 9, 130, 9}, true, true},  {{2, 3, 17, 4, 5, 9}, false, false},  {{2, 96, 96, 33, 65, 1}, true, true},
      {{2, 32, 1, 37, 130, 5}, true, true}, {{1, 1, 1, 1, 1, 1}, false, false},
  };
  for (const Case& cs : cases) {
    const Conv2dShape& s = cs.s;
    CAPTURE(s.n);
    CAPTURE(s.c_in);
    CAPTURE(s.c_out);
    CAPTURE(s.h);
    CAPTURE(s.w);
    CAPTURE(s.k);
    const size_t nx = size_t(s.n) * s.c_in * s.h * s.w, ny = size_t(s.n) * s.c_out * s.h * s.w;
    const size_t nw = size_t(s.c_out) * s.c_in * s.k * s.k;
    auto x = random_vector(nx, 1), w = random_vector(nw, 2), b = random_vector(s.c_out, 3), dy = random_vector(ny, 4);
    const float* bias = cs.bias ? b.data() : nullptr;
    ConvReference ref = conv_reference(s, x, w, bias, cs.relu, dy);
    // The workspace is poisoned: an element read before it is written would turn outputs into NaN.
    auto ws = poisoned(cpu::conv2d_workspace_floats(s));
    auto y = poisoned(ny), dx = poisoned(nx), dw = poisoned(nw), db = poisoned(s.c_out);
    cpu::conv2d_forward(s, x.data(), w.data(), bias, y.data(), cs.relu, ws.data());
    cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data(), ws.data());
    cpu::conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), db.data(), ws.data());
    // Tolerance: each output is a float sum of K products (K = c_in*k*k for y, c_out*k*k for dx,
    // n*h*w for dweight and dbias), accumulated in some order (sequentially per output in the
    // direct kernels, blocked in sgemm). Rounding then behaves like a random walk of K steps of
    // float epsilon (6e-8) times the running sum, bounded by the largest output: error ~
    // 6e-8 * sqrt(K) * max|ref|. We allow twice that (measured: at most ~1/3 of it, e.g. 1.8e-4 of
    // 5.8e-4 for K = 4704), with a floor of 1e-5; a wrong or missing term is O(0.1) or more.
    auto sum_tol = [](size_t K, const std::vector<float>& ref) {
      float peak = 0.f;
      for (float v : ref) peak = std::max(peak, std::fabs(v));
      return std::max(1e-5, 2 * 6e-8 * std::sqrt(double(K)) * peak);
    };
    const size_t kk = size_t(s.k) * s.k, npix = size_t(s.n) * s.h * s.w;
    CHECK_CLOSE_ARRAYS("conv2d y", ref.y.data(), y.data(), ny, sum_tol(s.c_in * kk, ref.y), 0.0);
    CHECK_CLOSE_ARRAYS("conv2d dx", ref.dx.data(), dx.data(), nx, sum_tol(s.c_out * kk, ref.dx), 0.0);
    CHECK_CLOSE_ARRAYS("conv2d dweight", ref.dw.data(), dw.data(), nw, sum_tol(npix, ref.dw), 0.0);
    CHECK_CLOSE_ARRAYS("conv2d dbias", ref.db.data(), db.data(), size_t(s.c_out), sum_tol(npix, ref.db), 0.0);
  }
}

TEST_CASE("conv2d: hand-computed 3x3 example, and bias-free backward leaves dbias alone") {
  // x = 1..9 in a 3x3 plane, weight all ones: each output is the sum of its zero-padded 3x3
  // neighbourhood; plus bias 0.5.
  Conv2dShape s{1, 1, 1, 3, 3, 3};
  std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w(9, 1.f), b = {0.5f}, y(9);
  std::vector<float> ws(cpu::conv2d_workspace_floats(s));
  cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data(), false, ws.data());
  const std::vector<float> expect = {12.5f, 21.5f, 16.5f, 27.5f, 45.5f, 33.5f, 24.5f, 39.5f, 28.5f};
  CHECK(y == expect);  // small integers + 0.5: exact in float
  // Fused ReLU with a negative bias clamps the corners (12-13=-1 etc.) to 0 only where negative.
  b[0] = -13.f;
  cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data(), true, ws.data());
  CHECK(y == std::vector<float>{0.f, 8.f, 3.f, 14.f, 32.f, 20.f, 11.f, 26.f, 15.f});
  std::vector<float> dw(9), dy(9, 1.f);
  cpu::conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), nullptr, ws.data());
  // dw[u][v] = sum of x over the positions reachable with offset (u-1, v-1).
  CHECK(dw == std::vector<float>{12.f, 21.f, 16.f, 27.f, 45.f, 33.f, 24.f, 39.f, 28.f});
}

TEST_CASE("conv2d: a NaN input poisons exactly the outputs whose window covers it") {
  Conv2dShape s{1, 1, 1, 5, 5, 3};
  std::vector<float> x(25, 1.f), w(9, 1.f), y(25);
  x[0] = kNaN;  // corner (0,0): reaches outputs (0..1, 0..1)
  std::vector<float> ws(cpu::conv2d_workspace_floats(s));
  cpu::conv2d_forward(s, x.data(), w.data(), nullptr, y.data(), true, ws.data());
  for (int i = 0; i < 5; ++i)
    for (int j = 0; j < 5; ++j) CHECK(std::isnan(y[i * 5 + j]) == (i <= 1 && j <= 1));
}

TEST_CASE("conv2d: invalid shapes and null pointers are refused with the op named") {
  Conv2dShape ok{2, 3, 4, 5, 7, 3};
  std::vector<float> x(2 * 3 * 35), w(4 * 3 * 9), y(2 * 4 * 35), ws(cpu::conv2d_workspace_floats(ok));
  Conv2dShape even = ok;
  even.k = 4;
  CHECK_THROWS_WITH_AS(cpu::conv2d_forward(even, x.data(), w.data(), nullptr, y.data(), false, ws.data()),
                       doctest::Contains("conv2d_forward: kernel size must be odd"), Error);
  Conv2dShape zero = ok;
  zero.c_in = 0;
  CHECK_THROWS_WITH_AS(cpu::conv2d_backward_data(zero, y.data(), w.data(), x.data(), ws.data()),
                       doctest::Contains("conv2d_backward_data: sizes must be positive"), Error);
  Conv2dShape neg = ok;
  neg.h = -1;
  CHECK_THROWS_AS(cpu::conv2d_workspace_floats(neg), Error);
  CHECK_THROWS_WITH_AS(cpu::conv2d_forward(ok, x.data(), w.data(), nullptr, y.data(), false, nullptr),
                       doctest::Contains("conv2d_forward: workspace is a null pointer"), Error);
  CHECK_THROWS_WITH_AS(cpu::conv2d_backward_weights(ok, x.data(), y.data(), nullptr, nullptr, ws.data()),
                       doctest::Contains("conv2d_backward_weights: dweight is a null pointer"), Error);
  CHECK_THROWS_WITH_AS(check_conv2d_shape(even, "my_layer"), doctest::Contains("my_layer"), Error);
}

// ------------------------------------------------------------------------------------------- maxpool2d

TEST_CASE("maxpool2d: matches a naive loop on odd sizes (floor), argmax indexes the input plane") {
  Pool2dShape s{3, 5, 9, 7};  // output 4x3: the last row and column are dropped
  const size_t nx = size_t(s.n) * s.c * s.h * s.w, ny = size_t(s.n) * s.c * s.out_h() * s.out_w();
  auto x = random_vector(nx, 11);
  auto y = poisoned(ny);
  std::vector<int32_t> arg(ny, -1);
  cpu::maxpool2d_forward(s, x.data(), y.data(), arg.data());
  size_t o = 0;
  for (int p = 0; p < s.n * s.c; ++p)
    for (int i = 0; i < s.out_h(); ++i)
      for (int j = 0; j < s.out_w(); ++j, ++o) {
        const float* xp = x.data() + size_t(p) * s.h * s.w;
        float m = std::max(std::max(xp[2 * i * s.w + 2 * j], xp[2 * i * s.w + 2 * j + 1]),
                           std::max(xp[(2 * i + 1) * s.w + 2 * j], xp[(2 * i + 1) * s.w + 2 * j + 1]));
        CHECK(y[o] == m);  // a max is a selection: exact
        REQUIRE(arg[o] >= 0);
        CHECK(xp[arg[o]] == m);
        const int ai = arg[o] / s.w, aj = arg[o] % s.w;
        CHECK((ai / 2 == i && aj / 2 == j));
      }
  // Backward: the gradient lands on the argmax, everything else (including the dropped row and
  // column) is zero.
  auto dy = random_vector(ny, 12);
  auto dx = poisoned(nx);
  cpu::maxpool2d_backward(s, dy.data(), arg.data(), dx.data());
  std::vector<float> expect(nx, 0.f);
  for (size_t q = 0; q < ny; ++q) expect[(q / (s.out_h() * s.out_w())) * s.h * s.w + arg[q]] = dy[q];
  CHECK(dx == expect);
}

TEST_CASE("maxpool2d: ties go to the first in raster order, NaN wins") {
  Pool2dShape s{1, 1, 2, 10};
  // windows (columns 2j, 2j+1 of rows 0 and 1):
  //  0: all equal            -> index 0 (first)
  //  1: tie between (0,3) and (1,2) -> (0,3) comes first in raster order
  //  2: NaN at (1,5)          -> NaN, index of the NaN
  //  3: NaN at (0,6) and (1,7) -> the first NaN
  //  4: -inf and a number     -> the number
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {2, 2, 0, 5, 1, 9, kNaN, 0, -inf, -inf,  //
                          2, 2, 5, 1, 3, kNaN, 1, kNaN, -inf, -3};
  std::vector<float> y(5);
  std::vector<int32_t> arg(5);
  cpu::maxpool2d_forward(s, x.data(), y.data(), arg.data());
  CHECK(y[0] == 2.f);
  CHECK(arg[0] == 0);
  CHECK(y[1] == 5.f);
  CHECK(arg[1] == 3);
  CHECK(std::isnan(y[2]));
  CHECK(arg[2] == 15);
  CHECK(std::isnan(y[3]));
  CHECK(arg[3] == 6);
  CHECK(y[4] == -3.f);
  CHECK(arg[4] == 19);
}

TEST_CASE("maxpool2d: planes smaller than a window are refused with the op named") {
  std::vector<float> x(8), y(4);
  std::vector<int32_t> arg(4);
  CHECK_THROWS_WITH_AS(cpu::maxpool2d_forward(Pool2dShape{1, 1, 1, 8}, x.data(), y.data(), arg.data()),
                       doctest::Contains("maxpool2d_forward: 2x2 pooling needs h, w >= 2"), Error);
  CHECK_THROWS_WITH_AS(cpu::maxpool2d_backward(Pool2dShape{1, 1, 2, 2}, y.data(), nullptr, x.data()),
                       doctest::Contains("maxpool2d_backward: argmax is a null pointer"), Error);
}

// ------------------------------------------------------------------------------------------ upsample2d

TEST_CASE("upsample2d: nearest 2x by hand, backward sums 2x2 blocks") {
  Upsample2dShape s{1, 1, 2, 3};
  std::vector<float> x = {1, 2, 3, 4, 5, 6}, y = poisoned(24);
  cpu::upsample2d_forward(s, x.data(), y.data());
  CHECK(y == std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 4, 4, 5, 5, 6, 6});
  std::vector<float> dy(24), dx = poisoned(6);
  for (int i = 0; i < 24; ++i) dy[i] = float(i);  // rows 0..3 of width 6
  cpu::upsample2d_backward(s, dy.data(), dx.data());
  // block (0,0): 0+1+6+7 = 14; (0,1): 2+3+8+9 = 22; (0,2): 30; row 1: 12+13+18+19 = 62, 70, 78.
  CHECK(dx == std::vector<float>{14, 22, 30, 62, 70, 78});
}

TEST_CASE("upsample2d: odd sizes and many planes match a naive loop") {
  Upsample2dShape s{3, 5, 7, 9};
  const size_t nx = size_t(s.n) * s.c * s.h * s.w;
  auto x = random_vector(nx, 21);
  auto y = poisoned(4 * nx);
  cpu::upsample2d_forward(s, x.data(), y.data());
  for (size_t p = 0; p < size_t(s.n) * s.c; ++p)
    for (int i = 0; i < 2 * s.h; ++i)
      for (int j = 0; j < 2 * s.w; ++j)
        REQUIRE(y[(p * 2 * s.h + i) * 2 * s.w + j] == x[(p * s.h + i / 2) * s.w + j / 2]);
  CHECK_THROWS_WITH_AS(cpu::upsample2d_forward(Upsample2dShape{1, 0, 2, 2}, x.data(), y.data()),
                       doctest::Contains("upsample2d_forward: sizes must be positive"), Error);
}

// ---------------------------------------------------------------------------------------------- concat

TEST_CASE("concat: channels of a then b per image; the backward splits, either side optional") {
  ConcatShape s{3, 2, 5, 3, 7};
  const size_t plane = 21, na = size_t(s.n) * s.c_a * plane, nb = size_t(s.n) * s.c_b * plane;
  auto a = random_vector(na, 31), b = random_vector(nb, 32);
  auto y = poisoned(na + nb);
  cpu::concat_forward(s, a.data(), b.data(), y.data());
  for (int n = 0; n < s.n; ++n)
    for (int c = 0; c < s.c_a + s.c_b; ++c)
      for (size_t i = 0; i < plane; ++i) {
        float want = c < s.c_a ? a[(size_t(n) * s.c_a + c) * plane + i] : b[(size_t(n) * s.c_b + c - s.c_a) * plane + i];
        REQUIRE(y[(size_t(n) * (s.c_a + s.c_b) + c) * plane + i] == want);
      }
  auto da = poisoned(na), db = poisoned(nb);
  cpu::concat_backward(s, y.data(), da.data(), db.data());
  CHECK(da == a);
  CHECK(db == b);
  auto db2 = poisoned(nb);
  cpu::concat_backward(s, y.data(), nullptr, db2.data());
  CHECK(db2 == b);
  CHECK_THROWS_WITH_AS(cpu::concat_forward(s, a.data(), nullptr, y.data()),
                       doctest::Contains("concat_forward: b is a null pointer"), Error);
}

// ------------------------------------------------------------------------------------ add, relu

TEST_CASE("add: forward (also in place) and accumulate") {
  const size_t n = 100003;  // large and odd: takes the OpenMP path with a ragged end
  auto a = random_vector(n, 41), b = random_vector(n, 42);
  std::vector<float> y = poisoned(n);
  cpu::add_forward(a.data(), b.data(), y.data(), n);
  for (size_t i = 0; i < n; ++i) REQUIRE(y[i] == a[i] + b[i]);
  std::vector<float> acc = a;
  cpu::add_forward(acc.data(), b.data(), acc.data(), n);  // y aliases a
  CHECK(acc == y);
  acc = a;
  cpu::add_accumulate(b.data(), acc.data(), n);
  CHECK(acc == y);
  cpu::add_forward(nullptr, nullptr, nullptr, 0);  // empty tensors are a no-op
  CHECK_THROWS_WITH_AS(cpu::add_accumulate(nullptr, acc.data(), n), doctest::Contains("add_accumulate: x is"), Error);
}

TEST_CASE("relu: max(0,x) with NaN kept, in place; backward passes dy where y > 0") {
  std::vector<float> x = {-2.f, -0.f, 0.f, 3.f, kNaN, 1e-30f, -1e-30f};
  std::vector<float> y = poisoned(x.size());
  cpu::relu_forward(x.data(), y.data(), x.size());
  CHECK(y[0] == 0.f);
  CHECK(y[1] == 0.f);
  CHECK(y[2] == 0.f);
  CHECK(y[3] == 3.f);
  CHECK(std::isnan(y[4]));
  CHECK(y[5] == 1e-30f);
  CHECK(y[6] == 0.f);
  std::vector<float> dy = {1, 2, 3, 4, 5, 6, 7};
  std::vector<float> dx = poisoned(x.size());
  cpu::relu_backward(dy.data(), y.data(), dx.data(), x.size());
  CHECK(dx == std::vector<float>{0, 0, 0, 4, 0, 6, 0});  // NaN > 0 is false: no gradient through NaN
  const size_t n = 70001;
  auto big = random_vector(n, 51);
  std::vector<float> ref(n);
  for (size_t i = 0; i < n; ++i) ref[i] = big[i] > 0 ? big[i] : 0.f;
  cpu::relu_forward(big.data(), big.data(), n);  // in place, OpenMP path
  CHECK(big == ref);
  cpu::relu_backward(ref.data(), ref.data(), ref.data(), n);  // dx aliases dy and y
  CHECK(big == ref);  // y > 0 -> dx = dy = y; otherwise 0 = y
}

// --------------------------------------------------------------------------------------------- dropout

TEST_CASE("dropout: p = 0 is the identity; kept elements are scaled by 1/(1-p) per dropout_keep") {
  const size_t n = 50001;
  auto x = random_vector(n, 61);
  std::vector<float> y = poisoned(n);
  cpu::dropout_forward(DropoutParams{0.f, 7, 3}, x.data(), y.data(), n);
  CHECK(y == x);
  DropoutParams d{0.2f, 7, 3};
  cpu::dropout_forward(d, x.data(), y.data(), n);
  const float scale = 1.f / (1.f - 0.2f);
  CHECK(dropout_scale(d) == scale);
  for (size_t i = 0; i < n; ++i) {
    const bool keep = dropout_keep(d, i);
    REQUIRE(keep == (counter_random_u32(7, 3, i) >= dropout_threshold(0.2f)));
    REQUIRE(y[i] == (keep ? x[i] * scale : 0.f));
  }
  std::vector<float> z = x;
  cpu::dropout_forward(d, z.data(), z.data(), n);  // in place gives the same
  CHECK(z == y);
}

TEST_CASE("dropout: mask fraction ~ p, reproducible per (seed, step), fresh per step") {
  const size_t n = 200001;
  std::vector<float> ones(n, 1.f), y1(n), y2(n), y3(n), y4(n);
  for (float p : {0.05f, 0.2f, 0.5f, 0.9f}) {
    CAPTURE(p);
    DropoutParams d{p, 1234, 17};
    cpu::dropout_forward(d, ones.data(), y1.data(), n);
    size_t dropped = 0;
    for (float v : y1) dropped += v == 0.f;
    // Dropped count ~ Binomial(n, p): standard deviation sqrt(n p (1-p)) <= 224 for n = 2e5.
    // 6 sigma (false alarm ~1e-9 for a good hash) still catches a threshold off by 0.3% of n.
    const double sd = std::sqrt(double(n) * p * (1 - p));
    CHECK(std::fabs(double(dropped) - double(n) * p) < 6 * sd);
  }
  DropoutParams d{0.2f, 1234, 17};
  cpu::dropout_forward(d, ones.data(), y1.data(), n);
  cpu::dropout_forward(d, ones.data(), y2.data(), n);
  CHECK(y1 == y2);
  DropoutParams next_step = d, other_seed = d;
  next_step.step = 18;
  other_seed.seed = 1235;
  cpu::dropout_forward(next_step, ones.data(), y3.data(), n);
  cpu::dropout_forward(other_seed, ones.data(), y4.data(), n);
  // Independent masks agree on a fraction p^2 + (1-p)^2 = 0.68 of elements; identical masks on 1.
  // 0.75 is > 30 sigma away from 0.68 (sd of the fraction ~ 0.001).
  size_t same3 = 0, same4 = 0;
  for (size_t i = 0; i < n; ++i) {
    same3 += y1[i] == y3[i];
    same4 += y1[i] == y4[i];
  }
  CHECK(double(same3) / n < 0.75);
  CHECK(double(same4) / n < 0.75);
}

TEST_CASE("dropout: p outside [0, 1) is refused with the op named") {
  std::vector<float> x(5), y(5);
  CHECK_THROWS_WITH_AS(cpu::dropout_forward(DropoutParams{1.f, 0, 0}, x.data(), y.data(), 5),
                       doctest::Contains("dropout_forward: drop probability must be in [0, 1)"), Error);
  CHECK_THROWS_AS(cpu::dropout_backward(DropoutParams{-0.1f, 0, 0}, x.data(), y.data(), 5), Error);
  CHECK_THROWS_AS(cpu::dropout_backward(DropoutParams{kNaN, 0, 0}, x.data(), y.data(), 5), Error);
}

// ------------------------------------------------------------------------------------------- psnr loss

TEST_CASE("psnr loss: hand-computed values, per-patch PSNR, eps and the max floor") {
  // Patch 0: target max 2, errors (0.1, -0.1, 0.2, 0): mse = (0.01+0.01+0.04)/4 = 0.015.
  // Patch 1: target max 1, perfect prediction: mse = 0 -> -10 log10(1e-10) = 100 dB (eps).
  PsnrLossShape s{2, 4};
  std::vector<float> t = {2.f, 1.f, 0.5f, 0.f, 1.f, 0.f, 0.25f, 0.75f};
  std::vector<float> y = {2.1f, 0.9f, 0.7f, 0.f, 1.f, 0.f, 0.25f, 0.75f};
  float loss = poison_value();
  std::vector<float> psnr = poisoned(2);
  cpu::psnr_loss_forward(s, y.data(), t.data(), &loss, psnr.data());
  // mse of patch 0 from the float inputs (2.1f - 2 etc. are not exactly 0.1): computed in double.
  double mse0 = 0;
  for (int i = 0; i < 4; ++i) mse0 += (double(y[i]) - t[i]) * (double(y[i]) - t[i]) / 4;
  const double p0 = 20 * std::log10(2.0) - 10 * std::log10(mse0 + 1e-10), p1 = 100.0;
  // Tolerance: the results are doubles rounded once to float (|p| <= 100 -> half ulp <= 4e-6).
  CHECK(psnr[0] == doctest::Approx(p0).epsilon(1e-6));
  CHECK(std::fabs(psnr[0] - (20 * std::log10(2.0) - 10 * std::log10(0.015))) < 1e-3);  // the hand value
  CHECK(psnr[1] == doctest::Approx(p1).epsilon(1e-6));
  CHECK(loss == doctest::Approx(-(p0 + p1) / 2).epsilon(1e-6));
  // Without psnr output, and an all-zero target: max clamps to 1e-10 -> 20 log10(1e-10) = -200 dB.
  PsnrLossShape one{1, 3};
  std::vector<float> zt(3, 0.f), zy = {0.f, 0.f, 1e-3f};
  cpu::psnr_loss_forward(one, zy.data(), zt.data(), &loss, nullptr);
  const double mse = double(1e-3f) * double(1e-3f) / 3;
  CHECK(loss == doctest::Approx(-(-200.0 - 10 * std::log10(mse + 1e-10))).epsilon(1e-6));
}

TEST_CASE("psnr loss: NaN in the prediction or target reaches the loss; bad shapes are refused") {
  PsnrLossShape s{2, 3};
  std::vector<float> t = {1, 2, 3, 4, 5, 6}, y = {1, 2, 3, 4, 5, 6};
  float loss = 0;
  y[4] = kNaN;
  cpu::psnr_loss_forward(s, y.data(), t.data(), &loss, nullptr);
  CHECK(std::isnan(loss));
  y[4] = 5;
  t[0] = kNaN;
  cpu::psnr_loss_forward(s, y.data(), t.data(), &loss, nullptr);
  CHECK(std::isnan(loss));
  CHECK_THROWS_WITH_AS(cpu::psnr_loss_forward(PsnrLossShape{0, 3}, y.data(), t.data(), &loss, nullptr),
                       doctest::Contains("psnr_loss_forward: sizes must be positive"), Error);
  CHECK_THROWS_WITH_AS(cpu::psnr_loss_backward(s, y.data(), t.data(), nullptr),
                       doctest::Contains("psnr_loss_backward: dpred is a null pointer"), Error);
}

// ------------------------------------------------------------------------------------------------ adam

TEST_CASE("adam: matches a double-precision reference of torch.optim.Adam over several steps") {
  const size_t n = 40001;  // takes the OpenMP path
  AdamParams a;  // lr 5e-3, betas (0.9, 0.999), eps 1e-8
  auto p = random_vector(n, 71);
  std::vector<float> m(n, 0.f), v(n, 0.f);
  std::vector<double> pd(p.begin(), p.end()), md(n, 0.0), vd(n, 0.0);
  for (long t = 1; t <= 5; ++t) {
    auto g = random_vector(n, 100 + t, -2.f, 2.f);
    if (t == 3)
      for (size_t i = 0; i < n; i += 7) g[i] = 0.f;  // zero gradients: v can shrink towards eps
    cpu::adam_update(a, t, p.data(), g.data(), m.data(), v.data(), n);
    // The reference takes the float parameters exactly (1 - 0.999f is 0.00099998713, not 0.001:
    // a 1.3e-5 relative difference that is part of the contract, not an error).
    const double b1 = a.beta1, b2 = a.beta2, lr = a.lr, eps = a.eps;
    const double bc1 = 1 - std::pow(b1, double(t)), bc2 = 1 - std::pow(b2, double(t));
    for (size_t i = 0; i < n; ++i) {
      md[i] = b1 * md[i] + (1 - b1) * g[i];
      vd[i] = b2 * vd[i] + (1 - b2) * double(g[i]) * g[i];
      pd[i] -= (lr / bc1) * md[i] / (std::sqrt(vd[i]) / std::sqrt(bc2) + eps);
    }
  }
  std::vector<float> pf(pd.begin(), pd.end()), mf(md.begin(), md.end()), vf(vd.begin(), vd.end());
  // Tolerances: each step moves p by ~lr = 5e-3 with float relative error ~1e-6 (a handful of
  // roundings, and the float betas 0.9f/0.999f differ from 0.9/0.999 by ~1e-8 relative), so after
  // 5 steps p is within ~1e-7 of the reference on top of its own rounding (|p| <= 1: 6e-8);
  // 1e-6 absolute is 10x that. m and v are a few float multiply-adds from the double values.
  CHECK_CLOSE_ARRAYS("adam param", pf.data(), p.data(), n, 1e-6, 1e-6);
  CHECK_CLOSE_ARRAYS("adam m", mf.data(), m.data(), n, 1e-7, 1e-5);
  CHECK_CLOSE_ARRAYS("adam v", vf.data(), v.data(), n, 1e-9, 1e-5);
}

TEST_CASE("adam: step scalars are the double bias corrections; bad parameters are refused") {
  AdamParams a;
  AdamStepScalars s1 = adam_step_scalars(a, 1);
  CHECK(s1.step_size == doctest::Approx(5e-3 / (1 - double(0.9f))).epsilon(1e-7));
  CHECK(s1.inv_sqrt_bc2 == doctest::Approx(1 / std::sqrt(1 - double(0.999f))).epsilon(1e-7));
  AdamStepScalars big = adam_step_scalars(a, 1000000);  // corrections vanish for large t
  CHECK(big.step_size == doctest::Approx(5e-3).epsilon(1e-7));
  CHECK(big.inv_sqrt_bc2 == doctest::Approx(1.0).epsilon(1e-7));
  std::vector<float> p(3), g(3), m(3), v(3);
  CHECK_THROWS_WITH_AS(cpu::adam_update(a, 0, p.data(), g.data(), m.data(), v.data(), 3),
                       doctest::Contains("adam_update: step is 1-based"), Error);
  AdamParams bad = a;
  bad.beta2 = 1.f;
  CHECK_THROWS_WITH_AS(cpu::adam_update(bad, 1, p.data(), g.data(), m.data(), v.data(), 3),
                       doctest::Contains("adam_update: beta2 must be in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(cpu::adam_update(a, 1, p.data(), g.data(), nullptr, v.data(), 3),
                       doctest::Contains("adam_update: m is a null pointer"), Error);
}
