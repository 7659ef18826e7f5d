// test_conv2d_fft_gpu_math.cpp: the CUDA frequency-domain convolution (kernels/conv2d_fft.cu)
// replayed on the host. Every per-element function its kernels call (conv2d_fft_math.h: the
// zero-padded scatter, the wrapped-kernel scatter, the per-thread register-blocked channel product
// with its split-phase summation order, the crop/scale/bias/ReLU) runs here in host loops over
// the same launch geometry and workspace layout, with FFTW's single-precision batched 2D R2C/C2R
// (same layouts and normalization as cuFFT) standing in for cuFFT. The result is compared with
// the direct CPU convolution (Conv2dAlgo::Direct) on odd, non-square shapes, including images
// smaller than the kernel, for every blocking the GPU may pick. Runs without a GPU.
#include <fftw3.h>

#include <cmath>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

#include "conv_fft_check.h"
#include "conv_test_cases.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_fft.h"
#include "kernels/conv2d_fft_math.h"
#include "kernels/fft_util.h"
#include "test_util.h"

namespace {

using namespace isonet;
using namespace isonet::fftconv;
using isonet::test::describe;
using isonet::test::random_vector;

// A batched 2D single-precision FFTW plan in the layouts of conv2d_fft_math.h (real planes ph*pw
// apart, spectra bins apart), planned on the arrays it will run on (FFTW_ESTIMATE does not touch
// them). This is what the cuFFT plans of conv2d_fft.cu compute.
class HostFft {
 public:
  HostFft(bool r2c, const Conv2dFftSize& sz, int batch, float* real, FftComplex* spectra) {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    int n[2] = {sz.ph, sz.pw};
    auto* c = reinterpret_cast<fftwf_complex*>(spectra);
    plan_ = r2c ? fftwf_plan_many_dft_r2c(2, n, batch, real, nullptr, 1, sz.ph * sz.pw, c, nullptr, 1, sz.bins(),
                                          FFTW_ESTIMATE)
                : fftwf_plan_many_dft_c2r(2, n, batch, c, nullptr, 1, sz.bins(), real, nullptr, 1, sz.ph * sz.pw,
                                          FFTW_ESTIMATE);
    REQUIRE(plan_ != nullptr);
  }
  ~HostFft() {
    std::lock_guard<std::mutex> lock(fftw_planner_mutex());
    fftwf_destroy_plan(plan_);
  }
  HostFft(const HostFft&) = delete;
  HostFft& operator=(const HostFft&) = delete;
  void run() { fftwf_execute(plan_); }

 private:
  fftwf_plan plan_ = nullptr;
};

// The GPU workspace, replayed: poisoned with NaN like the parity tests do on the device, so a
// region read before it is written (or two overlapping regions) shows up in the result.
struct HostWorkspace {
  Conv2dFftLayout L;
  std::vector<float> buf;
  HostWorkspace(const Conv2dShape& s, size_t fake_work_bytes)
      : L(conv2d_fft_layout(s, conv2d_fft_size(s), fake_work_bytes)),
        buf(L.total_floats, std::numeric_limits<float>::quiet_NaN()) {}
  float* real() { return buf.data() + L.real; }
  FftComplex* data() { return reinterpret_cast<FftComplex*>(buf.data() + L.data); }
  FftComplex* weight() { return reinterpret_cast<FftComplex*>(buf.data() + L.weight); }
  FftComplex* out() { return reinterpret_cast<FftComplex*>(buf.data() + L.out); }
};

// Kernel (b) + R2C: weight spectra.
void replay_weight_spectra(const Conv2dShape& s, const float* weight, HostWorkspace& ws) {
  const Conv2dFftSize sz = ws.L.size;
  const unsigned rows = static_cast<unsigned>(s.c_out * s.c_in * sz.ph);
  for (unsigned row = 0; row < rows; ++row) {  // one warp per row on the GPU
    const unsigned plane = row / sz.ph;
    const int i = static_cast<int>(row - plane * sz.ph);
    for (int j = 0; j < sz.pw; ++j)
      ws.real()[static_cast<size_t>(row) * sz.pw + j] = fft_weight_value(weight, plane, i, j, s.k, sz.ph, sz.pw);
  }
  HostFft(true, sz, s.c_out * s.c_in, ws.real(), ws.weight()).run();
}

// Kernel (a) + R2C: spectra of src [planes][h][w] into the data region.
void replay_input_spectra(const Conv2dShape& s, const float* src, int planes, HostWorkspace& ws) {
  const Conv2dFftSize sz = ws.L.size;
  const unsigned rows = static_cast<unsigned>(planes * sz.ph);
  for (unsigned row = 0; row < rows; ++row) {
    const unsigned plane = row / sz.ph;
    const int i = static_cast<int>(row - plane * sz.ph);
    for (int j = 0; j < sz.pw; ++j)
      ws.real()[static_cast<size_t>(row) * sz.pw + j] = fft_embed_value(src, plane, i, j, s.h, s.w);
  }
  HostFft(true, sz, planes, ws.real(), ws.data()).run();
}

// Kernel (c): every (bin tile, batch block, channel block) block, every thread; the split phases
// of a bin summed in the order of the GPU's shuffle tree.
void replay_product(const SpectralProductArgs& a, bool conj, const SpectralBlocking& blk) {
  with_spectral_blocking(blk.bn, blk.bq, [&](auto BN_, auto BQ_) {
    constexpr int BN = decltype(BN_)::value, BQ = decltype(BQ_)::value;
    struct Acc {
      float re[BN][BQ], im[BN][BQ];
      Acc& operator+=(const Acc& o) {
        for (int i = 0; i < BN; ++i)
          for (int j = 0; j < BQ; ++j) re[i][j] += o.re[i][j], im[i][j] += o.im[i][j];
        return *this;
      }
    };
    std::vector<Acc> acc(blk.split);
    for (size_t f = 0; f < a.bins; ++f) {
      for (int n0 = 0; n0 < a.n; n0 += BN) {
        for (int q0 = 0; q0 < a.q; q0 += BQ) {
          for (int phase = 0; phase < blk.split; ++phase) {
            if (conj)
              spectral_partial<BN, BQ, true>(a, f, n0, q0, phase, blk.split, acc[phase].re, acc[phase].im);
            else
              spectral_partial<BN, BQ, false>(a, f, n0, q0, phase, blk.split, acc[phase].re, acc[phase].im);
          }
          spectral_reduce_order(acc.data(), blk.split);
          spectral_store<BN, BQ>(a, f, n0, q0, acc[0].re, acc[0].im);
        }
      }
    }
  });
}

// C2R + kernel (d).
void replay_output(const Conv2dShape& s, int planes, int channels, const float* bias, bool relu, float* dst,
                   HostWorkspace& ws) {
  const Conv2dFftSize sz = ws.L.size;
  HostFft(false, sz, planes, ws.real(), ws.out()).run();
  const float scale = fft_inverse_scale(sz);
  const unsigned rows = static_cast<unsigned>(planes * s.h);
  for (unsigned row = 0; row < rows; ++row) {
    const unsigned plane = row / s.h;
    const int i = static_cast<int>(row - plane * s.h);
    const int channel = static_cast<int>(plane % channels);
    for (int j = 0; j < s.w; ++j)
      dst[static_cast<size_t>(row) * s.w + j] =
          fft_crop_value(ws.real(), plane, i, j, sz.ph, sz.pw, scale, bias, channel, relu);
  }
}

// gpu::conv2d_fft_forward, replayed; blk = nullptr: the blocking the GPU picks.
std::vector<float> replay_forward(const Conv2dShape& s, const std::vector<float>& x, const std::vector<float>& w,
                                  const float* bias, bool relu, const SpectralBlocking* blk) {
  HostWorkspace ws(s, 4096);
  replay_weight_spectra(s, w.data(), ws);
  replay_input_spectra(s, x.data(), s.n * s.c_in, ws);
  const SpectralProductArgs a{ws.data(), ws.weight(), ws.out(), s.n, s.c_out, s.c_in, ws.L.bins,
                              static_cast<size_t>(s.c_in), 1};
  replay_product(a, false, blk ? *blk : choose_spectral_blocking(a.n, a.q, a.r, a.bins));
  std::vector<float> y(static_cast<size_t>(s.n) * s.c_out * s.h * s.w);
  replay_output(s, s.n * s.c_out, s.c_out, bias, relu, y.data(), ws);
  return y;
}

// gpu::conv2d_fft_backward_data, replayed.
std::vector<float> replay_backward_data(const Conv2dShape& s, const std::vector<float>& dy,
                                        const std::vector<float>& w, const SpectralBlocking* blk) {
  HostWorkspace ws(s, 4096);
  replay_weight_spectra(s, w.data(), ws);
  replay_input_spectra(s, dy.data(), s.n * s.c_out, ws);
  const SpectralProductArgs a{ws.data(), ws.weight(), ws.out(), s.n, s.c_in, s.c_out, ws.L.bins, 1,
                              static_cast<size_t>(s.c_in)};
  replay_product(a, true, blk ? *blk : choose_spectral_blocking(a.n, a.q, a.r, a.bins));
  std::vector<float> dx(static_cast<size_t>(s.n) * s.c_in * s.h * s.w);
  replay_output(s, s.n * s.c_in, s.c_in, nullptr, false, dx.data(), ws);
  return dx;
}

std::vector<float> absolute(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

Conv2dShape make_shape(int n, int c_in, int c_out, int h, int w, int k) {
  Conv2dShape s;
  s.n = n, s.c_in = c_in, s.c_out = c_out, s.h = h, s.w = w, s.k = k;
  s.algo = Conv2dAlgo::Direct;  // the reference
  return s;
}

}  // namespace

TEST_CASE("conv2d fft gpu maths: tap index places every tap exactly once, at (p - a) mod P") {
  for (int k : {1, 3, 5, 7, 9}) {
    const int p = k / 2;
    for (int P = k; P <= k + 12; ++P) {
      std::vector<int> seen(k, 0);
      for (int i = 0; i < P; ++i) {
        const int a = fft_tap_index(i, P, p);
        if (a < 0) continue;
        REQUIRE(a < k);
        ++seen[a];
        CHECK(((p - a) % P + P) % P == i);
      }
      for (int a = 0; a < k; ++a) CHECK(seen[a] == 1);
    }
  }
}

TEST_CASE("conv2d fft gpu maths: workspace regions are disjoint, 256-byte aligned and large enough") {
  for (const Conv2dShape& s : {make_shape(1, 1, 1, 1, 1, 1), make_shape(3, 5, 2, 17, 13, 7),
                               make_shape(16, 96, 32, 64, 64, 7), make_shape(2, 3, 33, 5, 9, 9)}) {
    CAPTURE(describe(s));
    const Conv2dFftSize sz = conv2d_fft_size(s);
    const Conv2dFftLayout L = conv2d_fft_layout(s, sz, 1000);
    const size_t planes = std::max<size_t>(size_t(s.n) * std::max(s.c_in, s.c_out), size_t(s.c_in) * s.c_out);
    CHECK(L.real_floats >= planes * sz.ph * sz.pw);
    CHECK(L.data_floats >= 2 * size_t(s.n) * std::max(s.c_in, s.c_out) * sz.bins());
    CHECK(L.out_floats >= 2 * size_t(s.n) * std::max(s.c_in, s.c_out) * sz.bins());
    CHECK(L.weight_floats >= 2 * size_t(s.c_in) * s.c_out * sz.bins());
    CHECK(L.work_floats * sizeof(float) >= 1000);
    const size_t offs[] = {L.real, L.data, L.weight, L.out, L.work};
    const size_t lens[] = {L.real_floats, L.data_floats, L.weight_floats, L.out_floats, L.work_floats};
    for (int r = 0; r < 5; ++r) {
      CHECK(offs[r] % 64 == 0);
      if (r > 0) CHECK(offs[r] >= offs[r - 1] + lens[r - 1]);
    }
    CHECK(L.total_floats >= L.work + L.work_floats);
    CHECK(sz.ph >= s.h + s.k / 2);
    CHECK(sz.pw >= s.w + s.k / 2);
  }
}

TEST_CASE("conv2d fft gpu maths: product blocking stays within the instantiated kernels") {
  for (int n : {1, 2, 3, 8, 16}) {
    for (int q : {1, 3, 16, 32, 96}) {
      for (int r : {1, 16, 96}) {
        for (size_t bins : {size_t(1), size_t(36), size_t(2520), size_t(9180)}) {
          const SpectralBlocking b = choose_spectral_blocking(n, q, r, bins);
          CHECK((b.bn == 1 || b.bn == 2 || b.bn == 4 || b.bn == 8));
          CHECK((b.bq == 1 || b.bq == 2 || b.bq == 4 || b.bq == 8));
          CHECK((b.split == 1 || b.split == 2 || b.split == 4));
          CHECK(b.bn >= std::min(n, 8));  // no batch block smaller than needed
          CHECK(b.bq >= std::min(q, 8));
        }
      }
    }
  }
}

TEST_CASE("conv2d fft gpu maths: host replay of the CUDA algorithm matches the direct convolution") {
  // Odd and non-square sizes; images smaller than the kernel (P < k: the wrap collision case);
  // channel counts that leave partial BN x BQ blocks; k = 1 .. 9.
  const Conv2dShape shapes[] = {
      make_shape(1, 1, 1, 1, 1, 1),    make_shape(2, 3, 5, 7, 11, 3),  make_shape(3, 4, 2, 13, 9, 7),
      make_shape(1, 2, 3, 1, 2, 7),    make_shape(2, 5, 3, 2, 6, 9),   make_shape(1, 1, 1, 3, 2, 5),
      make_shape(5, 9, 17, 17, 19, 7), make_shape(2, 16, 8, 12, 10, 5), make_shape(9, 3, 1, 6, 5, 1),
      make_shape(1, 33, 3, 8, 7, 9)};
  // Blockings forced on top of the chosen one: tails in every dimension and all split phases.
  const SpectralBlocking forced[] = {{1, 1, 1}, {8, 8, 4}, {2, 4, 2}, {4, 2, 4}, {8, 1, 2}, {1, 8, 1}};
  uint64_t seed = 7000;
  double worst = 0;
  for (const Conv2dShape& s : shapes) {
    const size_t plane = size_t(s.h) * s.w;
    const size_t nx = s.n * s.c_in * plane, ny = s.n * s.c_out * plane;
    const auto x = random_vector(nx, ++seed), w = random_vector(size_t(s.c_out) * s.c_in * s.k * s.k, ++seed);
    const auto b = random_vector(s.c_out, ++seed), g = random_vector(ny, ++seed);
    std::vector<float> cpu_ws(cpu::conv2d_workspace_floats(s));
    std::vector<float> y_ref(ny), y_relu(ny), y_mag(ny), gx_ref(nx), gx_mag(nx);
    cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y_ref.data(), false, cpu_ws.data());
    cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y_relu.data(), true, cpu_ws.data());
    cpu::conv2d_forward(s, absolute(x).data(), absolute(w).data(), absolute(b).data(), y_mag.data(), false,
                        cpu_ws.data());
    cpu::conv2d_backward_data(s, g.data(), w.data(), gx_ref.data(), cpu_ws.data());
    cpu::conv2d_backward_data(s, absolute(g).data(), absolute(w).data(), gx_mag.data(), cpu_ws.data());
    std::vector<float> y_nobias(ny), y_nobias_mag(ny);
    cpu::conv2d_forward(s, x.data(), w.data(), nullptr, y_nobias.data(), false, cpu_ws.data());
    cpu::conv2d_forward(s, absolute(x).data(), absolute(w).data(), nullptr, y_nobias_mag.data(), false,
                        cpu_ws.data());
    const Conv2dFftSize sz = conv2d_fft_size(s);
    const double N = double(sz.ph) * sz.pw;

    std::vector<const SpectralBlocking*> blockings = {nullptr};
    for (const auto& f : forced) blockings.push_back(&f);
    for (const SpectralBlocking* blk : blockings) {
      INFO(describe(s) << " P=" << sz.ph << "x" << sz.pw << " blocking "
                       << (blk ? std::to_string(blk->bn) + "x" + std::to_string(blk->bq) + " split " +
                                     std::to_string(blk->split)
                               : std::string("chosen")));
      worst = std::max(worst, test::check_fft_close("forward +bias", y_ref, y_mag,
                                                    replay_forward(s, x, w, b.data(), false, blk), plane, N));
      worst = std::max(worst, test::check_fft_close("backward data", gx_ref, gx_mag,
                                                    replay_backward_data(s, g, w, blk), plane, N));
      if (!blk) {
        test::check_fft_close("forward +bias +relu", y_relu, y_mag, replay_forward(s, x, w, b.data(), true, blk),
                              plane, N);
        test::check_fft_close("forward no bias", y_nobias, y_nobias_mag, replay_forward(s, x, w, nullptr, false, blk),
                              plane, N);
      }
    }
  }
  MESSAGE("worst error over all cases: " << worst << " eps*log2(N)*plane_mag (limit 8)");
}

TEST_CASE("conv2d fft gpu maths: host replay on IsoNet-2's 7x7 layers (batch 2), the blocking the GPU picks") {
  // Realistic transform sizes (P = 70, 135) and channel sums (up to 96): the tolerance's
  // calibration at the sizes the GPU test and the benchmark run.
  const Conv2dShape shapes[] = {make_shape(2, 96, 32, 64, 64, 7), make_shape(2, 48, 16, 128, 128, 7),
                                make_shape(2, 1, 16, 128, 128, 7), make_shape(2, 32, 64, 32, 32, 7)};
  uint64_t seed = 8000;
  double worst = 0;
  for (const Conv2dShape& s : shapes) {
    INFO(describe(s));
    const size_t plane = size_t(s.h) * s.w, nx = s.n * s.c_in * plane, ny = s.n * s.c_out * plane;
    const auto x = random_vector(nx, ++seed), w = random_vector(size_t(s.c_out) * s.c_in * 49, ++seed, -0.1f, 0.1f);
    const auto b = random_vector(s.c_out, ++seed), g = random_vector(ny, ++seed);
    std::vector<float> cpu_ws(cpu::conv2d_workspace_floats(s)), y_ref(ny), y_mag(ny), gx_ref(nx), gx_mag(nx);
    cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y_ref.data(), true, cpu_ws.data());
    cpu::conv2d_forward(s, absolute(x).data(), absolute(w).data(), absolute(b).data(), y_mag.data(), false,
                        cpu_ws.data());
    cpu::conv2d_backward_data(s, g.data(), w.data(), gx_ref.data(), cpu_ws.data());
    cpu::conv2d_backward_data(s, absolute(g).data(), absolute(w).data(), gx_mag.data(), cpu_ws.data());
    const Conv2dFftSize sz = conv2d_fft_size(s);
    const double N = double(sz.ph) * sz.pw;
    worst = std::max(worst, test::check_fft_close("forward +bias +relu", y_ref, y_mag,
                                                  replay_forward(s, x, w, b.data(), true, nullptr), plane, N));
    worst = std::max(worst, test::check_fft_close("backward data", gx_ref, gx_mag,
                                                  replay_backward_data(s, g, w, nullptr), plane, N));
  }
  MESSAGE("worst error on IsoNet-2 layers: " << worst << " eps*log2(N)*plane_mag (limit 8)");
}

TEST_CASE("conv2d fft gpu maths: a wrong tap or a missing scale is caught by the tolerance") {
  // The check must be able to fail: the replay with one weight tap moved (what an index bug in
  // kernel b does) and with the output scaled by (1 + 1e-4) both fall outside it.
  const Conv2dShape s = make_shape(2, 16, 8, 12, 10, 7);
  const size_t plane = size_t(s.h) * s.w, nx = s.n * s.c_in * plane, ny = s.n * s.c_out * plane;
  const auto x = random_vector(nx, 91), w = random_vector(size_t(s.c_out) * s.c_in * 49, 92);
  std::vector<float> cpu_ws(cpu::conv2d_workspace_floats(s)), y_ref(ny), y_mag(ny);
  cpu::conv2d_forward(s, x.data(), w.data(), nullptr, y_ref.data(), false, cpu_ws.data());
  cpu::conv2d_forward(s, absolute(x).data(), absolute(w).data(), nullptr, y_mag.data(), false, cpu_ws.data());
  const Conv2dFftSize sz = conv2d_fft_size(s);
  const double N = double(sz.ph) * sz.pw;
  auto fails = [&](const std::vector<float>& got) {
    return test::fft_close_report(y_ref, y_mag, got, plane, N).bad > 0;
  };
  CHECK_FALSE(fails(replay_forward(s, x, w, nullptr, false, nullptr)));
  auto w_moved = w;
  std::swap(w_moved[3 * 7 + 2], w_moved[3 * 7 + 4]);  // plane (0,0): two taps of row 3 exchanged
  CHECK(fails(replay_forward(s, x, w_moved, nullptr, false, nullptr)));
  auto y_scaled = replay_forward(s, x, w, nullptr, false, nullptr);
  for (float& v : y_scaled) v *= 1.0001f;
  CHECK(fails(y_scaled));
}
