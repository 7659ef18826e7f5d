// test_cuda_conv_fft.cpp: the CUDA frequency-domain convolution (kernels/conv2d_fft.cu, selected
// with Conv2dAlgo::Fft) against the direct CPU convolution (Conv2dAlgo::Direct): forward with and
// without bias and ReLU, backward data, over odd and non-square sizes, k in {1,3,5,7,9}, 1..96
// channels, batch 1..16, and IsoNet-2's layers at batch 16. Outputs and the workspace sit between
// sentinel guard regions with a NaN-poisoned body (cuda_test_util.h): guards must survive, NaN
// never passes. Tolerance: conv_fft_check.h (normwise per output plane, the bound calibrated by
// the host replay in test_conv2d_fft_gpu_math.cpp). Backward weights of an Fft shape stays direct
// and is checked with the same workspace. Without a GPU every case reports itself skipped.
// Built without the CUDA backend (ISONET_CUDA=OFF) the gpu:: entry points this program calls
// do not exist: it reports itself skipped, as on a machine without a GPU.
#include "test_util.h"
#if !ISONET_HAS_CUDA
TEST_CASE("cuda conv fft: built without the CUDA backend") { CHECK_FALSE(isonet::test::gpu_or_skip()); }
#else

#include <string>
#include <thread>
#include <vector>

#include "conv_fft_check.h"
#include "conv_test_cases.h"
#include "cuda_test_util.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_fft.h"
#include "kernels/error.h"
#include "test_util.h"

namespace {

using namespace isonet;
using namespace isonet::test;

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

double transform_points(const Conv2dShape& s) {
  const Conv2dFftSize sz = conv2d_fft_size(s);
  return double(sz.ph) * sz.pw;
}

// Runs forward, backward data (FFT) and backward weights (direct) of an Fft case through the
// public dispatch (gpu::conv2d_*) with guarded, poisoned buffers and checks all of them.
void run_case(const ConvCase& cc, uint64_t seed) {
  const Conv2dShape& s = cc.s;
  const ConvData d = conv_data(s, seed);
  const ConvResults ref = cpu_conv(cc, d), mag = cpu_conv_magnitudes(cc, d), got = gpu_conv(cc, d);
  const size_t plane = size_t(s.h) * s.w;
  const double N = transform_points(s);
  check_fft_close("fft forward y", ref.y, mag.y, got.y, plane, N);
  check_fft_close("fft backward dx", ref.dx, mag.dx, got.dx, plane, N);
  // Backward weights is the direct kernel (tolerance as in test_cuda_ops_parity.cpp).
  check_normalized("backward dW (Fft shape, direct)", ref.dw, mag.dw, got.dw, double(s.n) * plane);
  check_normalized("backward dbias (Fft shape, direct)", ref.db, mag.db, got.db, double(s.n) * plane);
}

// run_case with the case named, where an exception (a cuFFT or launch error) fails this case only:
// the loops go on, so one GPU run reports every failing shape.
void check_case(const ConvCase& cc, uint64_t seed) {
  INFO("fft case " << describe(cc));
  CHECK_NOTHROW(run_case(cc, seed));
}

}  // namespace

TEST_CASE("cuda conv fft: forward (bias/ReLU on and off) and backward data over the shape grid") {
  if (!gpu_or_skip()) return;
  uint64_t seed = 50000;
  for (const ConvCase& cc : conv_grid({1, 3, 5, 7, 9}, shape(1, 1, 1, 1, 1, 1))) check_case(cc, seed += 10);
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
  const ConvCase cc{shape(3, 5, 7, 19, 23, 5), true, false};
  const Conv2dShape& s = cc.s;
  const ConvData d = conv_data(s, 70000);
  const ConvResults ref = cpu_conv(cc, d), mag = cpu_conv_magnitudes(cc, d);
  const size_t plane = size_t(s.h) * s.w;
  Guarded<float> dx(d.x), dw(d.w), db(d.b), ws(std::max<size_t>(gpu::conv2d_workspace_floats(s), 1));
  Guarded<float> y_dispatch(ref.y.size()), y_fft(ref.y.size()), y_direct(ref.y.size());
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
  check_fft_close("fft forward", ref.y, mag.y, b, plane, transform_points(s));
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
  const ConvCase cc{shape(4, 8, 6, 21, 18, 7), false, true};
  const Conv2dShape& s = cc.s;
  const ConvData d = conv_data(s, 80000);
  const ConvResults ref = cpu_conv(cc, d), mag = cpu_conv_magnitudes(cc, d);
  const size_t plane = size_t(s.h) * s.w, floats = gpu::conv2d_workspace_floats(s);
  Guarded<float> dx(d.x), dw(d.w);
  Guarded<float> ws_a(floats), ws_b(floats), y_a(ref.y.size()), y_b(ref.y.size());
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
  check_fft_close("thread a", ref.y, mag.y, y_a.read("y a"), plane, transform_points(s));
  check_fft_close("thread b", ref.y, mag.y, y_b.read("y b"), plane, transform_points(s));
  // The workspaces were sized with the main thread's plans and carved with each worker's: the
  // guards show a worker plan whose cuFFT work area came out larger.
  ws_a.read("workspace a");
  ws_b.read("workspace b");
}

#endif  // ISONET_HAS_CUDA
