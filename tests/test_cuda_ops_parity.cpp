// test_cuda_ops_parity.cpp: one table-driven parity harness for every CUDA op against its CPU twin
// (in the spirit of ggml's test-backend-ops). Each op runs over a grid of shapes (odd sizes,
// 1..96 channels, batch 1..16, k in {1,3,5,7,9} and 11 for the direct fallback) on random inputs.
// Every GPU output buffer sits between two guard regions filled with a sentinel and is poisoned
// (NaN) before the run: the guards must come back untouched (no out-of-bounds write) and no NaN
// ever passes a comparison (every element was written). Exact ops (pooling, argmax, upsample,
// concat, add, relu, dropout) must match bit for bit; reductions (conv, PSNR, Adam) within
// tolerances whose reasons are written next to them. Backward weights and the PSNR loss must be
// bitwise reproducible run to run. Without a GPU every case reports itself skipped.
// Built without the CUDA backend (ISONET_CUDA=OFF) the gpu:: entry points this program calls
// do not exist: it reports itself skipped, as on a machine without a GPU.
#include "test_util.h"
#if !ISONET_HAS_CUDA
TEST_CASE("cuda parity: built without the CUDA backend") { CHECK_FALSE(isonet::test::gpu_or_skip()); }
#else

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/adam.h"
#include "kernels/add.h"
#include "kernels/concat.h"
#include "kernels/conv2d.h"
#include "kernels/device.h"
#include "kernels/dropout.h"
#include "kernels/error.h"
#include "kernels/maxpool2d.h"
#include "kernels/psnr_loss.h"
#include "kernels/relu.h"
#include "kernels/upsample2d.h"
#include "conv_test_cases.h"
#include "cuda_test_util.h"
#include "test_util.h"

namespace {

using namespace isonet;
using isonet::test::random_vector;
using namespace isonet::test;

// ------------------------------------------------------------------------------------------------
// Elementwise ops
// ------------------------------------------------------------------------------------------------

const size_t kCounts[] = {1, 3, 4, 5, 17, 1023, 4099, (size_t(1) << 20) + 5};

TEST_CASE("cuda parity: add, accumulate, relu forward/backward (bitwise)") {
  if (!isonet::test::gpu_or_skip()) return;
  for (size_t guard : {kGuard, kGuardMisaligned}) {
    for (size_t count : kCounts) {
      CAPTURE(count);
      CAPTURE(guard);
      const auto a = random_vector(count, 11 + count), b = random_vector(count, 12 + count);
      // Outputs of ReLU's forward have exact zeros; feed the backward a realistic y.
      std::vector<float> y_relu(count);
      cpu::relu_forward(a.data(), y_relu.data(), count);

      {  // y = a + b, out of place
        Guarded<float> da(a, guard), db(b, guard), dy(count, guard);
        dy.poison_body();
        gpu::add_forward(da.get(), db.get(), dy.get(), count, nullptr);
        std::vector<float> ref(count);
        cpu::add_forward(a.data(), b.data(), ref.data(), count);
        check_bitwise("add_forward", ref, dy.read("add_forward y"));
      }
      {  // y += x (accumulate), and a = a + b in place
        Guarded<float> dx(a, guard), dy(b, guard);
        gpu::add_accumulate(dx.get(), dy.get(), count, nullptr);
        std::vector<float> ref = b;
        cpu::add_accumulate(a.data(), ref.data(), count);
        check_bitwise("add_accumulate", ref, dy.read("add_accumulate y"));
        gpu::add_forward(dx.get(), dy.get(), dx.get(), count, nullptr);
        std::vector<float> ref2(count);
        cpu::add_forward(a.data(), ref.data(), ref2.data(), count);
        check_bitwise("add_forward in place", ref2, dx.read("add_forward in-place y"));
      }
      {  // relu forward (out of place and in place) and backward
        Guarded<float> dx(a, guard), dy(count, guard);
        dy.poison_body();
        gpu::relu_forward(dx.get(), dy.get(), count, nullptr);
        check_bitwise("relu_forward", y_relu, dy.read("relu_forward y"));
        gpu::relu_forward(dx.get(), dx.get(), count, nullptr);
        check_bitwise("relu_forward in place", y_relu, dx.read("relu_forward in-place y"));

        Guarded<float> g(b, guard), out(y_relu, guard), gx(count, guard);
        gx.poison_body();
        gpu::relu_backward(g.get(), out.get(), gx.get(), count, nullptr);
        std::vector<float> ref(count);
        cpu::relu_backward(b.data(), y_relu.data(), ref.data(), count);
        check_bitwise("relu_backward", ref, gx.read("relu_backward dx"));
      }
    }
  }
}

TEST_CASE("cuda parity: relu keeps NaN, add of zero elements is a no-op") {
  if (!isonet::test::gpu_or_skip()) return;
  const std::vector<float> x = {-1.f, std::nanf(""), 0.f, -0.f, 2.f};
  Guarded<float> dx(x), dy(x.size());
  dy.poison_body();
  gpu::relu_forward(dx.get(), dy.get(), x.size(), nullptr);
  std::vector<float> ref(x.size());
  cpu::relu_forward(x.data(), ref.data(), x.size());
  check_bitwise("relu_forward with NaN", ref, dy.read("relu y"));
  CHECK(std::isnan(ref[1]));
  gpu::add_forward(nullptr, nullptr, nullptr, 0, nullptr);  // empty tensors may carry null pointers
  CHECK_THROWS_AS(gpu::add_forward(dx.get(), nullptr, dy.get(), x.size(), nullptr), isonet::Error);
}

TEST_CASE("cuda parity: dropout forward/backward (mask and values bit-identical)") {
  if (!isonet::test::gpu_or_skip()) return;
  for (size_t guard : {kGuard, kGuardMisaligned}) {
    for (size_t count : kCounts) {
      for (float p : {0.f, 0.2f, 0.5f, 0.9f}) {
        CAPTURE(count);
        CAPTURE(p);
        DropoutParams d;
        d.p = p;
        d.seed = 0x1234567ull + count;
        d.step = 42 + static_cast<uint64_t>(p * 10);
        // Inputs bounded away from 0 so "output == 0" means "dropped".
        auto x = random_vector(count, 100 + count, 0.5f, 1.5f);
        for (size_t i = 0; i < count; i += 2) x[i] = -x[i];
        Guarded<float> dx(x, guard), dy(count, guard);
        dy.poison_body();
        gpu::dropout_forward(d, dx.get(), dy.get(), count, nullptr);
        std::vector<float> ref(count);
        cpu::dropout_forward(d, x.data(), ref.data(), count);
        const auto got = dy.read("dropout_forward y");
        check_bitwise("dropout_forward", ref, got);
        size_t mask_bad = 0;
        for (size_t i = 0; i < count; ++i) mask_bad += (got[i] != 0.f) != dropout_keep(d, i);
        CHECK(mask_bad == 0);

        // Backward in place on the upstream gradient.
        const auto g = random_vector(count, 200 + count);
        Guarded<float> dg(g, guard);
        gpu::dropout_backward(d, dg.get(), dg.get(), count, nullptr);
        std::vector<float> gref(count);
        cpu::dropout_backward(d, g.data(), gref.data(), count);
        check_bitwise("dropout_backward in place", gref, dg.read("dropout_backward dx"));
      }
    }
  }
  DropoutParams bad;
  bad.p = 1.f;
  Guarded<float> b1(4);
  CHECK_THROWS_AS(gpu::dropout_forward(bad, b1.get(), b1.get(), 4, nullptr), isonet::Error);
}

TEST_CASE("cuda parity: fused Adam over several steps") {
  if (!isonet::test::gpu_or_skip()) return;
  AdamParams a;  // the paper's lr = 5e-3
  for (size_t guard : {kGuard, kGuardMisaligned}) {
    for (size_t count : kCounts) {
      CAPTURE(count);
      CAPTURE(guard);
      auto p = random_vector(count, 300 + count), m = std::vector<float>(count, 0.f), v = m;
      Guarded<float> dp(p, guard), dm(m, guard), dv(v, guard), dg(count, guard);
      for (long step = 1; step <= 3; ++step) {
        CAPTURE(step);
        const auto g = random_vector(count, 400 + count + step);
        dg.set(g);
        gpu::adam_update(a, step, dp.get(), dg.get(), dm.get(), dv.get(), count, nullptr);
        cpu::adam_update(a, step, p.data(), g.data(), m.data(), v.data(), count);
        // Tolerances: each update is a handful of fp32 operations on O(1) values, identical in
        // formula on both sides, but nvcc and gcc contract different multiply-adds into FMAs
        // (1-2 ulp per step, compounding over 3 steps); m can cancel towards 0, hence an atol of a
        // few ulp of 1.0. A wrong formula (epsilon placement, bias correction) is off by >1e-3.
        CHECK_CLOSE_ARRAYS("adam m", m.data(), dm.read("adam m").data(), count, 1e-6, 1e-6);
        CHECK_CLOSE_ARRAYS("adam v", v.data(), dv.read("adam v").data(), count, 1e-9, 1e-6);
        CHECK_CLOSE_ARRAYS("adam param", p.data(), dp.read("adam param").data(), count, 1e-6, 1e-6);
      }
    }
  }
}

// One value in device memory (RAII), for the ops that read a value when they run.
template <class T>
struct DeviceValue {
  T* ptr;
  explicit DeviceValue(const T& v) : ptr(static_cast<T*>(device_alloc(Device::CUDA, sizeof(T)))) {
    device_copy(ptr, Device::CUDA, &v, Device::CPU, sizeof(T));
  }
  ~DeviceValue() { device_free(Device::CUDA, ptr, sizeof(T)); }
  DeviceValue(const DeviceValue&) = delete;
  DeviceValue& operator=(const DeviceValue&) = delete;
};

TEST_CASE("cuda parity: dropout step and Adam scalars read from device memory (recorded steps)") {
  if (!isonet::test::gpu_or_skip()) return;
  // Dropout: step + *step_offset, read when the kernel runs, equals the plain step on the CPU.
  const size_t count = 1001;
  const auto x = random_vector(count, 77, 0.5f, 1.5f);
  DropoutParams d;
  d.p = 0.3f, d.seed = 5, d.step = 3;
  Guarded<float> dx(x), dy(count);
  const DeviceValue<uint64_t> offset(160);
  d.step_offset = offset.ptr;
  dy.poison_body();
  gpu::dropout_forward(d, dx.get(), dy.get(), count, nullptr);
  DropoutParams plain = d;
  plain.step_offset = nullptr;
  plain.step = 163;
  std::vector<float> ref(count);
  cpu::dropout_forward(plain, x.data(), ref.data(), count);
  check_bitwise("dropout with a device step offset", ref, dy.read("dropout y"));

  // Adam: the scalars from device memory give the same bits as the same step by value on the GPU.
  AdamParams a;
  const long step = 7;
  const auto p0 = random_vector(count, 78), g = random_vector(count, 79), m0 = random_vector(count, 80, 0.f, 0.1f),
             v0 = random_vector(count, 81, 0.f, 0.01f);
  Guarded<float> p1(p0), m1(m0), v1(v0), p2(p0), m2(m0), v2(v0), dg(g);
  const AdamStepScalars sc = adam_step_scalars(a, step);
  const DeviceValue<AdamStepScalars> scalars(sc);
  gpu::adam_update(a, step, p1.get(), dg.get(), m1.get(), v1.get(), count, nullptr);
  gpu::adam_update_scalars(a, scalars.ptr, p2.get(), dg.get(), m2.get(), v2.get(), count, nullptr);
  check_bitwise("adam param", p1.read("p by value"), p2.read("p from memory"));
  check_bitwise("adam m", m1.read("m by value"), m2.read("m from memory"));
  check_bitwise("adam v", v1.read("v by value"), v2.read("v from memory"));
  CHECK_THROWS_AS(gpu::adam_update_scalars(a, nullptr, p2.get(), dg.get(), m2.get(), v2.get(), count, nullptr),
                  isonet::Error);
}

// ------------------------------------------------------------------------------------------------
// Pooling, upsampling, concat
// ------------------------------------------------------------------------------------------------

struct Spatial {
  int h, w;
};
const Spatial kPoolSizes[] = {{2, 2}, {3, 5}, {17, 13}, {33, 31}, {64, 64}, {128, 128}};

TEST_CASE("cuda parity: max pooling with ties and NaN (values and argmax exact), backward exact") {
  if (!isonet::test::gpu_or_skip()) return;
  const int channels[] = {1, 3, 16, 33};
  int variant = 0;
  for (const auto& sp : kPoolSizes) {
    for (int c : channels) {
      Pool2dShape s;
      s.n = 1 + variant % 3;
      s.c = c;
      s.h = sp.h;
      s.w = sp.w;
      ++variant;
      CAPTURE(s.n);
      CAPTURE(s.c);
      CAPTURE(s.h);
      CAPTURE(s.w);
      const size_t in = static_cast<size_t>(s.n) * s.c * s.h * s.w;
      const size_t out = static_cast<size_t>(s.n) * s.c * s.out_h() * s.out_w();
      // Values on a coarse grid (many ties) with ~3% NaN: exercises the first-max and NaN rules.
      auto x = random_vector(in, 500 + variant);
      for (size_t i = 0; i < in; ++i) {
        x[i] = std::floor(x[i] * 2.f) / 2.f;
        if ((i * 2654435761u) % 97 < 3) x[i] = std::nanf("");
      }
      std::vector<float> y_ref(out);
      std::vector<int32_t> arg_ref(out);
      cpu::maxpool2d_forward(s, x.data(), y_ref.data(), arg_ref.data());

      Guarded<float> dx(x), dy(out);
      Guarded<int32_t> darg(out);
      dy.poison_body();
      darg.poison_body();
      gpu::maxpool2d_forward(s, dx.get(), dy.get(), darg.get(), nullptr);
      check_bitwise("maxpool y", y_ref, dy.read("maxpool y"));
      check_bitwise("maxpool argmax", arg_ref, darg.read("maxpool argmax"));

      const auto g = random_vector(out, 600 + variant);
      std::vector<float> gx_ref(in);
      cpu::maxpool2d_backward(s, g.data(), arg_ref.data(), gx_ref.data());
      Guarded<float> dg(g), dgx(in);
      dgx.poison_body();
      gpu::maxpool2d_backward(s, dg.get(), darg.get(), dgx.get(), nullptr);
      check_bitwise("maxpool dx", gx_ref, dgx.read("maxpool dx"));
    }
  }
  Pool2dShape bad;
  bad.h = 1;
  bad.w = 4;
  Guarded<float> b(8);
  Guarded<int32_t> ba(8);
  CHECK_THROWS_AS(gpu::maxpool2d_forward(bad, b.get(), b.get(), ba.get(), nullptr), isonet::Error);
}

TEST_CASE("cuda parity: nearest upsampling forward/backward (bitwise: same addition order)") {
  if (!isonet::test::gpu_or_skip()) return;
  const Spatial sizes[] = {{1, 1}, {3, 5}, {17, 13}, {32, 32}, {64, 64}};
  int variant = 0;
  for (const auto& sp : sizes) {
    for (int c : {1, 16, 33}) {
      Upsample2dShape s;
      s.n = 1 + variant % 3;
      s.c = c;
      s.h = sp.h;
      s.w = sp.w;
      ++variant;
      CAPTURE(s.c);
      CAPTURE(s.h);
      CAPTURE(s.w);
      const size_t in = static_cast<size_t>(s.n) * s.c * s.h * s.w, out = 4 * in;
      const auto x = random_vector(in, 700 + variant), g = random_vector(out, 800 + variant);
      std::vector<float> y_ref(out), gx_ref(in);
      cpu::upsample2d_forward(s, x.data(), y_ref.data());
      cpu::upsample2d_backward(s, g.data(), gx_ref.data());
      Guarded<float> dx(x), dy(out), dg(g), dgx(in);
      dy.poison_body();
      dgx.poison_body();
      gpu::upsample2d_forward(s, dx.get(), dy.get(), nullptr);
      gpu::upsample2d_backward(s, dg.get(), dgx.get(), nullptr);
      check_bitwise("upsample y", y_ref, dy.read("upsample y"));
      check_bitwise("upsample dx", gx_ref, dgx.read("upsample dx"));
    }
  }
}

TEST_CASE("cuda parity: channel concat forward/backward (bitwise), null gradient outputs") {
  if (!isonet::test::gpu_or_skip()) return;
  const Spatial sizes[] = {{1, 1}, {3, 5}, {17, 13}, {64, 64}};
  const int pairs[][2] = {{1, 1}, {16, 32}, {32, 64}, {3, 33}};
  int variant = 0;
  for (const auto& sp : sizes) {
    for (const auto& pr : pairs) {
      for (size_t guard : {kGuard, kGuardMisaligned}) {
        ConcatShape s;
        s.n = 1 + variant % 3;
        s.c_a = pr[0];
        s.c_b = pr[1];
        s.h = sp.h;
        s.w = sp.w;
        ++variant;
        CAPTURE(s.c_a);
        CAPTURE(s.c_b);
        CAPTURE(s.h);
        CAPTURE(s.w);
        CAPTURE(guard);
        const size_t plane = static_cast<size_t>(s.h) * s.w;
        const size_t na = s.n * s.c_a * plane, nb = s.n * s.c_b * plane, ny = na + nb;
        const auto a = random_vector(na, 900 + variant), b = random_vector(nb, 1000 + variant);
        const auto g = random_vector(ny, 1100 + variant);
        std::vector<float> y_ref(ny), ga_ref(na), gb_ref(nb);
        cpu::concat_forward(s, a.data(), b.data(), y_ref.data());
        cpu::concat_backward(s, g.data(), ga_ref.data(), gb_ref.data());

        Guarded<float> da(a, guard), db(b, guard), dy(ny, guard);
        dy.poison_body();
        gpu::concat_forward(s, da.get(), db.get(), dy.get(), nullptr);
        check_bitwise("concat y", y_ref, dy.read("concat y"));

        Guarded<float> dg(g, guard), dga(na, guard), dgb(nb, guard);
        dga.poison_body();
        dgb.poison_body();
        gpu::concat_backward(s, dg.get(), dga.get(), dgb.get(), nullptr);
        check_bitwise("concat da", ga_ref, dga.read("concat da"));
        check_bitwise("concat db", gb_ref, dgb.read("concat db"));
        // Only one side wants a gradient: the other buffer must stay untouched (still poisoned).
        dga.poison_body();
        dgb.poison_body();
        gpu::concat_backward(s, dg.get(), nullptr, dgb.get(), nullptr);
        check_bitwise("concat db (da null)", gb_ref, dgb.read("concat db"));
        check_bitwise("concat da untouched", std::vector<float>(na, poison<float>()), dga.read("concat da"));
      }
    }
  }
}

// ------------------------------------------------------------------------------------------------
// Convolution
// ------------------------------------------------------------------------------------------------

// The grid: every k in {1,3,5,7,9} x spatial sizes, with channel pairs and batches rotating so
// that each pair meets several sizes; then IsoNet-2's own layers (smaller batch where the CPU
// reference would be slow), and k = 11 for the direct fallback kernels.
std::vector<ConvCase> conv_cases() {
  const Spatial sizes[] = {{1, 1}, {3, 5}, {17, 13}, {33, 31}, {64, 64}};
  const int pairs[][2] = {{1, 16}, {16, 1}, {3, 33}, {33, 3}, {16, 32}, {96, 64}, {64, 96}};
  std::vector<ConvCase> cases;
  int i = 0;
  for (int k : {1, 3, 5, 7, 9}) {
    for (const auto& sp : sizes) {
      const auto& pr = pairs[i % 7];
      Conv2dShape s;
      s.n = 1 + i % 3;
      s.c_in = pr[0];
      s.c_out = pr[1];
      s.h = sp.h;
      s.w = sp.w;
      s.k = k;
      cases.push_back({s, i % 3 != 2, i % 2 == 0});
      ++i;
    }
  }
  // IsoNet-2 (U-Net, 7x7 convs, skip concatenations, final 1x1).
  auto add = [&](int n, int ci, int co, int h, int w, int k, bool relu) {
    Conv2dShape s;
    s.n = n;
    s.c_in = ci;
    s.c_out = co;
    s.h = h;
    s.w = w;
    s.k = k;
    cases.push_back({s, true, relu});
  };
  add(16, 1, 16, 128, 128, 7, true);    // first layer: many reduction slices in backward weights
  add(2, 16, 32, 64, 64, 7, true);
  add(4, 32, 64, 32, 32, 7, true);
  add(2, 96, 32, 64, 64, 7, true);      // after upsampling + concat (64 + 32)
  add(2, 48, 16, 128, 128, 7, true);    // after upsampling + concat (32 + 16)
  add(16, 16, 1, 128, 128, 1, false);   // output 1x1 conv: c_out = 1, large bias reduction
  // Direct fallback (k not templated).
  add(2, 3, 5, 17, 13, 11, true);
  add(1, 4, 2, 3, 5, 11, false);
  return cases;
}

TEST_CASE("cuda parity: conv2d forward, backward data, backward weights over the shape grid") {
  if (!isonet::test::gpu_or_skip()) return;
  uint64_t seed = 2000;
  for (const ConvCase& cc : conv_cases()) {
    const Conv2dShape& s = cc.s;
    INFO("conv case " << describe(cc));
    const ConvData d = conv_data(s, seed += 10);
    const ConvResults ref = cpu_conv(cc, d), mag = cpu_conv_magnitudes(cc, d), got = gpu_conv(cc, d);
    const double kk = static_cast<double>(s.k) * s.k, pixels = static_cast<double>(s.n) * s.h * s.w;
    check_normalized("conv forward y", ref.y, mag.y, got.y, s.c_in * kk + 1);
    check_normalized("conv backward dx", ref.dx, mag.dx, got.dx, s.c_out * kk);
    check_normalized("conv backward dW", ref.dw, mag.dw, got.dw, pixels);
    check_normalized("conv backward dbias", ref.db, mag.db, got.db, pixels);
  }
}

TEST_CASE("cuda parity: conv2d backward weights without dbias, invalid arguments") {
  if (!isonet::test::gpu_or_skip()) return;
  Conv2dShape s;
  s.n = 2;
  s.c_in = 5;
  s.c_out = 9;
  s.h = 19;
  s.w = 23;
  s.k = 3;
  const size_t plane = static_cast<size_t>(s.h) * s.w, nw = static_cast<size_t>(s.c_out) * s.c_in * 9;
  const auto x = random_vector(s.n * s.c_in * plane, 3001), g = random_vector(s.n * s.c_out * plane, 3002);
  std::vector<float> cpu_ws(cpu::conv2d_workspace_floats(s)), gw_ref(nw), gw_mag(nw);
  cpu::conv2d_backward_weights(s, x.data(), g.data(), gw_ref.data(), nullptr, cpu_ws.data());
  cpu::conv2d_backward_weights(s, absolute(x).data(), absolute(g).data(), gw_mag.data(), nullptr, cpu_ws.data());
  Guarded<float> dx(x), dg(g), dgw(nw), ws(gpu::conv2d_workspace_floats(s));
  dgw.poison_body();
  gpu::conv2d_backward_weights(s, dx.get(), dg.get(), dgw.get(), nullptr, ws.get(), nullptr);
  check_normalized("conv backward dW (no dbias)", gw_ref, gw_mag, dgw.read("dW"), static_cast<double>(s.n) * plane);

  Conv2dShape even = s;
  even.k = 4;
  CHECK_THROWS_AS(gpu::conv2d_forward(even, dx.get(), dgw.get(), nullptr, dg.get(), false, ws.get(), nullptr),
                  isonet::Error);
  CHECK_THROWS_AS(gpu::conv2d_backward_weights(s, dx.get(), dg.get(), dgw.get(), nullptr, nullptr, nullptr),
                  isonet::Error);
  CHECK_THROWS_AS(gpu::conv2d_forward(s, nullptr, dgw.get(), nullptr, dg.get(), false, ws.get(), nullptr),
                  isonet::Error);
}

// ------------------------------------------------------------------------------------------------
// PSNR loss
// ------------------------------------------------------------------------------------------------

struct PsnrCase {
  int n;
  size_t per_patch;
  bool perfect;  // pred == target: mse = 0, the epsilon path
};

TEST_CASE("cuda parity: PSNR loss forward (loss, per-patch PSNR) and backward") {
  if (!isonet::test::gpu_or_skip()) return;
  const PsnrCase cases[] = {{1, 1, false},     {3, 7, false},     {16, 2048, false}, {5, 2049, false},
                            {16, 16384, false}, {3, 663, true},    {2, 4099, false},
                            {1, 5000001, false}};  // the last one hits the chunk-count cap
  uint64_t seed = 5000;
  for (const auto& pc : cases) {
    CAPTURE(pc.n);
    CAPTURE(pc.per_patch);
    PsnrLossShape s;
    s.n = pc.n;
    s.per_patch = pc.per_patch;
    const size_t count = s.n * s.per_patch;
    const auto t = random_vector(count, ++seed, 0.f, 1.f);
    auto y = random_vector(count, ++seed, -0.1f, 0.1f);
    for (size_t i = 0; i < count; ++i) y[i] = pc.perfect ? t[i] : t[i] + y[i];
    float loss_ref = 0;
    std::vector<float> psnr_ref(s.n), grad_ref(count);
    cpu::psnr_loss_forward(s, y.data(), t.data(), &loss_ref, psnr_ref.data());
    cpu::psnr_loss_backward(s, y.data(), t.data(), grad_ref.data());

    Guarded<float> dy(y), dt(t), dloss(1), dpsnr(s.n), dgrad(count), ws(gpu::psnr_loss_workspace_floats(s));
    dloss.poison_body();
    dpsnr.poison_body();
    dgrad.poison_body();
    ws.poison_body();
    gpu::psnr_loss_forward(s, dy.get(), dt.get(), dloss.get(), dpsnr.get(), ws.get(), nullptr);
    gpu::psnr_loss_backward(s, dy.get(), dt.get(), dgrad.get(), ws.get(), nullptr);
    // Both sides sum the squared errors in double (the GPU keeps ~48 bits per partial as a float
    // pair) and take the logs in double; they differ only in summation order (~1e-15 relative),
    // so the float results differ by at most an ulp of the final rounding: 1e-6 relative on
    // PSNR values of 10-100 dB, plus 1e-6 dB absolute for a loss near 0.
    const auto loss = dloss.read("psnr loss");
    CHECK_CLOSE_ARRAYS("psnr loss", &loss_ref, loss.data(), 1, 1e-6, 1e-6);
    CHECK_CLOSE_ARRAYS("psnr per patch", psnr_ref.data(), dpsnr.read("psnr per patch").data(), psnr_ref.size(),
                       1e-6, 1e-6);
    // dpred = coef * (y - t): (y - t) is the same float on both sides; coef may differ by an ulp.
    CHECK_CLOSE_ARRAYS("psnr gradient", grad_ref.data(), dgrad.read("psnr gradient").data(), count, 1e-30,
                       4 * FLT_EPSILON);
    ws.read("psnr workspace");  // guards only

    // Without the per-patch output.
    dloss.poison_body();
    gpu::psnr_loss_forward(s, dy.get(), dt.get(), dloss.get(), nullptr, ws.get(), nullptr);
    CHECK_CLOSE_ARRAYS("psnr loss (no per-patch output)", &loss_ref, dloss.read("psnr loss").data(), 1, 1e-6, 1e-6);
  }
}

// ------------------------------------------------------------------------------------------------
// Determinism
// ------------------------------------------------------------------------------------------------

TEST_CASE("cuda determinism: backward weights and PSNR loss are bitwise reproducible") {
  if (!isonet::test::gpu_or_skip()) return;
  Conv2dShape s;
  s.n = 8;
  s.c_in = 48;
  s.c_out = 16;
  s.h = 64;
  s.w = 64;
  s.k = 7;
  const size_t plane = static_cast<size_t>(s.h) * s.w, nw = static_cast<size_t>(s.c_out) * s.c_in * 49;
  Guarded<float> dx(random_vector(s.n * s.c_in * plane, 6001)), dg(random_vector(s.n * s.c_out * plane, 6002));
  Guarded<float> dgw(nw), dgb(s.c_out), ws(gpu::conv2d_workspace_floats(s));
  std::vector<float> first_w, first_b;
  for (int run = 0; run < 3; ++run) {
    dgw.poison_body();
    dgb.poison_body();
    ws.poison_body();
    gpu::conv2d_backward_weights(s, dx.get(), dg.get(), dgw.get(), dgb.get(), ws.get(), nullptr);
    auto w = dgw.read("dW"), b = dgb.read("dbias");
    if (run == 0) {
      first_w = w, first_b = b;
    } else {
      check_bitwise("dW run-to-run", first_w, w);
      check_bitwise("dbias run-to-run", first_b, b);
    }
  }

  PsnrLossShape ps;
  ps.n = 16;
  ps.per_patch = 128 * 128;
  const size_t count = ps.n * ps.per_patch;
  Guarded<float> py(random_vector(count, 6003, 0.f, 1.f)), pt(random_vector(count, 6004, 0.f, 1.f));
  Guarded<float> loss(1), psnr(ps.n), grad(count), pws(gpu::psnr_loss_workspace_floats(ps));
  std::vector<float> first_loss, first_psnr, first_grad;
  for (int run = 0; run < 3; ++run) {
    loss.poison_body();
    psnr.poison_body();
    grad.poison_body();
    gpu::psnr_loss_forward(ps, py.get(), pt.get(), loss.get(), psnr.get(), pws.get(), nullptr);
    gpu::psnr_loss_backward(ps, py.get(), pt.get(), grad.get(), pws.get(), nullptr);
    auto l = loss.read("loss"), p = psnr.read("psnr"), g = grad.read("grad");
    if (run == 0) {
      first_loss = l, first_psnr = p, first_grad = g;
    } else {
      check_bitwise("psnr loss run-to-run", first_loss, l);
      check_bitwise("psnr per patch run-to-run", first_psnr, p);
      check_bitwise("psnr gradient run-to-run", first_grad, g);
    }
  }
}

}  // namespace

#endif  // ISONET_HAS_CUDA
