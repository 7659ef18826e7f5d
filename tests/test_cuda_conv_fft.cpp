// test_cuda_conv_fft.cpp: the CUDA frequency-domain convolution (kernels/conv2d_fft.cu, selected
// with Conv2dAlgo::Fft) against the direct CPU convolution (Conv2dAlgo::Direct): forward with and
// without bias and ReLU, backward data, over odd and non-square sizes, k in {1,3,5,7,9}, 1..96
// channels, batch 1..16, and IsoNet-2's layers at batch 16. Outputs and the workspace sit between
// sentinel guard regions with a NaN-poisoned body (cuda_test_util.h): guards must survive, NaN
// never passes. Tolerance: conv_fft_check.h (normwise per output plane, the bound calibrated by
// the host replay in test_conv2d_fft_gpu_math.cpp). Backward weights of an Fft shape stays direct
// and is checked with the same workspace. Without a GPU every case reports itself skipped.
#include <string>
#include <thread>
#include <vector>

#include "conv_fft_check.h"
#include "cuda_test_util.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_fft.h"
#include "kernels/error.h"
#include "test_util.h"

namespace {

using namespace isonet;
using namespace isonet::test;

struct FftCase {
  Conv2dShape s;  // algo = Fft
  bool bias, relu;
};

Conv2dShape shape(int n, int c_in, int c_out, int h, int w, int k, Conv2dAlgo algo = Conv2dAlgo::Fft) {
  Conv2dShape s;
  s.n = n, s.c_in = c_in, s.c_out = c_out, s.h = h, s.w = w, s.k = k;
  s.algo = algo;
  return s;
}

Conv2dShape direct(Conv2dShape s) {
  s.algo = Conv2dAlgo::Direct;
  return s;
}

std::string describe(const Conv2dShape& s) {
  return "n=" + std::to_string(s.n) + " c_in=" + std::to_string(s.c_in) + " c_out=" + std::to_string(s.c_out) +
         " h=" + std::to_string(s.h) + " w=" + std::to_string(s.w) + " k=" + std::to_string(s.k);
}

// The grid: every k x spatial size (odd, non-square, smaller than the kernel), with channel pairs
// (1..96, partial 8-wide product blocks) and batches (1..16) rotating so that each meets several
// sizes, bias and ReLU alternating.
std::vector<FftCase> grid_cases() {
  struct Spatial {
    int h, w;
  };
  const Spatial sizes[] = {{1, 1}, {3, 5}, {17, 13}, {33, 31}, {7, 40}, {64, 64}};
  const int pairs[][2] = {{1, 16}, {16, 1}, {3, 33}, {33, 3}, {16, 32}, {96, 64}, {64, 96}, {5, 7}};
  const int batches[] = {1, 2, 3, 16, 5};
  std::vector<FftCase> cases;
  int i = 0;
  for (int k : {1, 3, 5, 7, 9}) {
    for (const auto& sp : sizes) {
      const auto& pr = pairs[i % 8];
      // Batch 16 only where the CPU reference stays cheap (< ~2 GFLOP).
      int n = batches[i % 5];
      if (n == 16 && double(pr[0]) * pr[1] * sp.h * sp.w * k * k > 4e6) n = 4;
      cases.push_back({shape(n, pr[0], pr[1], sp.h, sp.w, k), i % 3 != 2, i % 2 == 0});
      ++i;
    }
  }
  return cases;
}

// CPU direct references of one case: y (with the case's bias/ReLU), dx, dW, dbias and their
// magnitudes (the same sums over |terms|).
struct Refs {
  std::vector<float> x, w, b, g;
  std::vector<float> y, y_mag, gx, gx_mag, gw, gw_mag, gb, gb_mag;
};

Refs references(const FftCase& cc, uint64_t seed) {
  const Conv2dShape s = direct(cc.s);
  const size_t plane = size_t(s.h) * s.w, nx = s.n * s.c_in * plane, ny = s.n * s.c_out * plane;
  const size_t nw = size_t(s.c_out) * s.c_in * s.k * s.k;
  Refs r;
  r.x = random_vector(nx, seed + 1);
  r.w = random_vector(nw, seed + 2);
  r.b = random_vector(s.c_out, seed + 3);
  r.g = random_vector(ny, seed + 4);
  const auto ax = absolute(r.x), aw = absolute(r.w), ab = absolute(r.b), ag = absolute(r.g);
  std::vector<float> ws(cpu::conv2d_workspace_floats(s));
  r.y.resize(ny), r.y_mag.resize(ny), r.gx.resize(nx), r.gx_mag.resize(nx);
  r.gw.resize(nw), r.gw_mag.resize(nw), r.gb.resize(s.c_out), r.gb_mag.resize(s.c_out);
  cpu::conv2d_forward(s, r.x.data(), r.w.data(), cc.bias ? r.b.data() : nullptr, r.y.data(), cc.relu, ws.data());
  cpu::conv2d_forward(s, ax.data(), aw.data(), cc.bias ? ab.data() : nullptr, r.y_mag.data(), false, ws.data());
  cpu::conv2d_backward_data(s, r.g.data(), r.w.data(), r.gx.data(), ws.data());
  cpu::conv2d_backward_data(s, ag.data(), aw.data(), r.gx_mag.data(), ws.data());
  cpu::conv2d_backward_weights(s, r.x.data(), r.g.data(), r.gw.data(), r.gb.data(), ws.data());
  cpu::conv2d_backward_weights(s, ax.data(), ag.data(), r.gw_mag.data(), r.gb_mag.data(), ws.data());
  return r;
}

double transform_points(const Conv2dShape& s) {
  const Conv2dFftSize sz = conv2d_fft_size(s);
  return double(sz.ph) * sz.pw;
}

// Runs forward, backward data (FFT) and backward weights (direct) of an Fft case through the
// public dispatch (gpu::conv2d_*) with guarded, poisoned buffers and checks all of them.
void run_case(const FftCase& cc, uint64_t seed) {
  const Conv2dShape& s = cc.s;
  const Refs r = references(cc, seed);
  const size_t plane = size_t(s.h) * s.w;
  Guarded<float> dx(r.x), dw(r.w), db(r.b), dg(r.g), dy(r.y.size()), dgx(r.x.size()), dgw(r.w.size()),
      dgb(r.b.size());
  Guarded<float> ws(std::max<size_t>(gpu::conv2d_workspace_floats(s), 1));
  dy.poison_body();
  dgx.poison_body();
  dgw.poison_body();
  dgb.poison_body();
  ws.poison_body();  // every region must be written before it is read
  gpu::conv2d_forward(s, dx.get(), dw.get(), cc.bias ? db.get() : nullptr, dy.get(), cc.relu, ws.get(), nullptr);
  gpu::conv2d_backward_data(s, dg.get(), dw.get(), dgx.get(), ws.get(), nullptr);
  gpu::conv2d_backward_weights(s, dx.get(), dg.get(), dgw.get(), dgb.get(), ws.get(), nullptr);
  const double N = transform_points(s);
  check_fft_close("fft forward y", r.y, r.y_mag, dy.read("fft forward y"), plane, N);
  check_fft_close("fft backward dx", r.gx, r.gx_mag, dgx.read("fft backward dx"), plane, N);
  // Backward weights is the direct kernel (tolerance as in test_cuda_ops_parity.cpp).
  check_normalized("backward dW (Fft shape, direct)", r.gw, r.gw_mag, dgw.read("dW"), double(s.n) * plane);
  check_normalized("backward dbias (Fft shape, direct)", r.gb, r.gb_mag, dgb.read("dbias"), double(s.n) * plane);
  ws.read("fft workspace");  // guards only
}

// run_case with the case named, where an exception (a cuFFT or launch error) fails this case only:
// the loops go on, so one GPU run reports every failing shape.
void check_case(const FftCase& cc, uint64_t seed) {
  INFO("fft case " << describe(cc.s) << (cc.bias ? " bias" : " no-bias") << (cc.relu ? " relu" : ""));
  CHECK_NOTHROW(run_case(cc, seed));
}

}  // namespace

TEST_CASE("cuda conv fft: forward (bias/ReLU on and off) and backward data over the shape grid") {
  if (!gpu_or_skip()) return;
  uint64_t seed = 50000;
  for (const FftCase& cc : grid_cases()) check_case(cc, seed += 10);
}

TEST_CASE("cuda conv fft: IsoNet-2's 7x7 layers at batch 16") {
  if (!gpu_or_skip()) return;
  // C16 @128 - C32 @64 - C64 @32 - decoder C32 @64 after concat (96 in) and plain 64 -> 32 -
  // C16 @128 after concat (48 in) and plain 32 -> 16: the shapes of bench_ops_cuda.
  const int layers[][4] = {{1, 16, 128, 128}, {16, 32, 64, 64}, {32, 64, 32, 32}, {96, 32, 64, 64},
                           {64, 32, 64, 64},  {48, 16, 128, 128}, {32, 16, 128, 128}};
  uint64_t seed = 60000;
  for (const auto& l : layers) check_case({shape(16, l[0], l[1], l[2], l[3], 7), true, true}, seed += 10);
}

TEST_CASE("cuda conv fft: the dispatch runs the FFT path for Fft only; direct entry points agree") {
  if (!gpu_or_skip()) return;
  const FftCase cc{shape(3, 5, 7, 19, 23, 5), true, false};
  const Conv2dShape& s = cc.s;
  const Refs r = references(cc, 70000);
  const size_t plane = size_t(s.h) * s.w;
  Guarded<float> dx(r.x), dw(r.w), db(r.b), ws(std::max<size_t>(gpu::conv2d_workspace_floats(s), 1));
  Guarded<float> y_dispatch(r.y.size()), y_fft(r.y.size()), y_direct(r.y.size());
  y_dispatch.poison_body();
  y_fft.poison_body();
  y_direct.poison_body();
  CHECK(gpu::conv2d_workspace_floats(s) >= gpu::conv2d_fft_workspace_floats(s));
  CHECK(gpu::conv2d_workspace_floats(s) >= gpu::conv2d_workspace_floats(direct(s)));
  CHECK(gpu::conv2d_fft_workspace_floats(s) == gpu::conv2d_fft_workspace_floats(s));  // cached plans
  gpu::conv2d_forward(s, dx.get(), dw.get(), db.get(), y_dispatch.get(), false, ws.get(), nullptr);
  gpu::conv2d_fft_forward(s, dx.get(), dw.get(), db.get(), y_fft.get(), false, ws.get(), nullptr);
  gpu::conv2d_forward(direct(s), dx.get(), dw.get(), db.get(), y_direct.get(), false, ws.get(), nullptr);
  const auto a = y_dispatch.read("y dispatch"), b = y_fft.read("y fft"), c = y_direct.read("y direct");
  // Same cached cuFFT plans and kernels on the same data: the same bits. The direct kernels sum in
  // another order, so at least some elements differ from them (this shape has 175 terms each).
  check_bitwise("dispatch Fft == conv2d_fft_forward", b, a);
  size_t differ = 0;
  for (size_t i = 0; i < a.size(); ++i) differ += !same_bits(a[i], c[i]);
  CHECK(differ > 0);
  check_fft_close("fft forward", r.y, r.y_mag, b, plane, transform_points(s));
}

TEST_CASE("cuda conv fft: invalid arguments give clear errors") {
  if (!gpu_or_skip()) return;
  const Conv2dShape s = shape(2, 3, 4, 9, 7, 3);
  const size_t nx = 2 * 3 * 63, ny = 2 * 4 * 63, nw = 4 * 3 * 9;
  const size_t floats = gpu::conv2d_fft_workspace_floats(s);
  Guarded<float> x(nx), w(nw), y(ny), ws(floats), ws_mis(floats, kGuardMisaligned);
  CHECK(contains(error_of([&] { gpu::conv2d_fft_forward(s, x.get(), w.get(), nullptr, y.get(), false, ws_mis.get(), nullptr); }),
                 "256-byte aligned"));
  CHECK(contains(error_of([&] { gpu::conv2d_fft_forward(s, x.get(), w.get(), nullptr, y.get(), false, nullptr, nullptr); }),
                 "workspace"));
  CHECK(contains(error_of([&] { gpu::conv2d_fft_backward_data(s, nullptr, w.get(), x.get(), ws.get(), nullptr); }),
                 "dy"));
  Conv2dShape even = s;
  even.k = 4;
  CHECK_THROWS_AS(gpu::conv2d_fft_forward(even, x.get(), w.get(), nullptr, y.get(), false, ws.get(), nullptr),
                  isonet::Error);
  CHECK_THROWS_AS(gpu::conv2d_fft_workspace_floats(even), isonet::Error);
}

TEST_CASE("cuda conv fft: two host threads run the same shape, each with its own plans") {
  if (!gpu_or_skip()) return;
  // Each thread has its own workspace and output and runs the same shape repeatedly. The plans
  // were sized on the main thread; each worker gets its own on its first call (cuFFT plans must
  // not be shared between threads; see conv2d_fft.cu). Legacy default stream for both, so the
  // device work is ordered; this checks the per-thread plan cache and its lock.
  const FftCase cc{shape(4, 8, 6, 21, 18, 7), false, true};
  const Conv2dShape& s = cc.s;
  const Refs r = references(cc, 80000);
  const size_t plane = size_t(s.h) * s.w, floats = gpu::conv2d_workspace_floats(s);
  Guarded<float> dx(r.x), dw(r.w);
  Guarded<float> ws_a(floats), ws_b(floats), y_a(r.y.size()), y_b(r.y.size());
  y_a.poison_body();
  y_b.poison_body();
  std::string err_a, err_b;
  auto worker = [&](Guarded<float>* ws, Guarded<float>* y, std::string* err) {
    *err = error_of([&] {
      for (int i = 0; i < 20; ++i)
        gpu::conv2d_forward(s, dx.get(), dw.get(), nullptr, y->get(), true, ws->get(), nullptr);
    });
  };
  std::thread ta(worker, &ws_a, &y_a, &err_a), tb(worker, &ws_b, &y_b, &err_b);
  ta.join();
  tb.join();
  CHECK(err_a == "");
  CHECK(err_b == "");
  check_fft_close("thread a", r.y, r.y_mag, y_a.read("y a"), plane, transform_points(s));
  check_fft_close("thread b", r.y, r.y_mag, y_b.read("y b"), plane, transform_points(s));
  // The workspaces were sized with the main thread's plans and carved with each worker's: the
  // guards show a worker plan whose cuFFT work area came out larger.
  ws_a.read("workspace a");
  ws_b.read("workspace b");
}
