// conv_test_cases.h: what the convolution parity tests share (test_cuda_ops_parity.cpp,
// test_cuda_conv_fft.cpp, test_cuda_conv_tf32.cpp, and the host replays): a case (shape with its
// algorithm and math, bias, ReLU) and its name, the odd-size shape grid of the GPU tests, seeded
// data, the CPU direct convolution's results and magnitudes (the same sums over |terms|, which the
// tolerances scale with), and the three passes on the GPU through the public dispatch into
// guarded, NaN-poisoned buffers and workspace (cuda_test_util.h).
#pragma once
#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "kernels/conv2d.h"
#include "test_util.h"

namespace isonet::test {

struct ConvCase {
  Conv2dShape s;
  bool bias = true, relu = false;
};

inline std::string describe(const Conv2dShape& s) {
  return "n=" + std::to_string(s.n) + " c_in=" + std::to_string(s.c_in) + " c_out=" + std::to_string(s.c_out) +
         " h=" + std::to_string(s.h) + " w=" + std::to_string(s.w) + " k=" + std::to_string(s.k);
}

inline std::string describe(const ConvCase& c) {
  return describe(c.s) + (c.bias ? " bias" : " no-bias") + (c.relu ? " relu" : "");
}

// The grid of the FFT and TF32 GPU tests: every k in ks x spatial sizes (1x1, smaller than the
// kernel, odd, non-square, 64x64), with channel pairs (1..96, partial 8-wide blocks) and batches
// (1..16) rotating so that each pair meets several sizes, bias and ReLU alternating. Every case
// takes algo and math from `base`.
inline std::vector<ConvCase> conv_grid(std::initializer_list<int> ks, const Conv2dShape& base) {
  struct Spatial {
    int h, w;
  };
  const Spatial sizes[] = {{1, 1}, {3, 5}, {17, 13}, {33, 31}, {7, 40}, {64, 64}};
  const int pairs[][2] = {{1, 16}, {16, 1}, {3, 33}, {33, 3}, {16, 32}, {96, 64}, {64, 96}, {5, 7}};
  const int batches[] = {1, 2, 3, 16, 5};
  std::vector<ConvCase> cases;
  int i = 0;
  for (int k : ks) {
    for (const auto& sp : sizes) {
      const auto& pr = pairs[i % 8];
      // Batch 16 only where the CPU reference stays cheap (< ~2 GFLOP).
      int n = batches[i % 5];
      if (n == 16 && double(pr[0]) * pr[1] * sp.h * sp.w * k * k > 4e6) n = 4;
      Conv2dShape s = base;
      s.n = n, s.c_in = pr[0], s.c_out = pr[1], s.h = sp.h, s.w = sp.w, s.k = k;
      cases.push_back({s, i % 3 != 2, i % 2 == 0});
      ++i;
    }
  }
  return cases;
}

// Inputs of one case: x [n,c_in,h,w], w [c_out,c_in,k,k], b [c_out], g = dy [n,c_out,h,w].
struct ConvData {
  std::vector<float> x, w, b, g;
};

inline ConvData conv_data(const Conv2dShape& s, uint64_t seed) {
  const size_t plane = size_t(s.h) * s.w;
  return {random_vector(s.n * s.c_in * plane, seed + 1), random_vector(size_t(s.c_out) * s.c_in * s.k * s.k, seed + 2),
          random_vector(s.c_out, seed + 3), random_vector(s.n * s.c_out * plane, seed + 4)};
}

// The three passes' outputs: y (with the case's bias/ReLU), dx, dW, dbias.
struct ConvResults {
  std::vector<float> y, dx, dw, db;
};

// The CPU direct convolution (Conv2dAlgo::Direct; the CPU ignores the math) of d.
inline ConvResults cpu_conv(const ConvCase& c, const ConvData& d) {
  Conv2dShape s = c.s;
  s.algo = Conv2dAlgo::Direct;
  ConvResults r{std::vector<float>(d.g.size()), std::vector<float>(d.x.size()), std::vector<float>(d.w.size()),
                std::vector<float>(d.b.size())};
  std::vector<float> ws(cpu::conv2d_workspace_floats(s));
  cpu::conv2d_forward(s, d.x.data(), d.w.data(), c.bias ? d.b.data() : nullptr, r.y.data(), c.relu, ws.data());
  cpu::conv2d_backward_data(s, d.g.data(), d.w.data(), r.dx.data(), ws.data());
  cpu::conv2d_backward_weights(s, d.x.data(), d.g.data(), r.dw.data(), r.db.data(), ws.data());
  return r;
}

// The magnitudes of the case's outputs: the CPU convolution of |d| without ReLU (per element the
// sum of |terms|, plus |bias| in y).
inline ConvResults cpu_conv_magnitudes(const ConvCase& c, const ConvData& d) {
  const ConvCase plain{c.s, c.bias, false};
  return cpu_conv(plain, {absolute(d.x), absolute(d.w), absolute(d.b), absolute(d.g)});
}

// The three passes on the GPU through gpu::conv2d_* (the dispatch, with c.s's algo and math),
// every output and the workspace between sentinel guards with a NaN-poisoned body (every element
// must be written, no workspace read before it is written); reading back checks the guards.
inline ConvResults gpu_conv(const ConvCase& c, const ConvData& d) {
  const Conv2dShape& s = c.s;
  Guarded<float> x(d.x), w(d.w), b(d.b), g(d.g), y(d.g.size()), dx(d.x.size()), dw(d.w.size()), db(d.b.size());
  Guarded<float> ws(std::max<size_t>(gpu::conv2d_workspace_floats(s), 1));
  for (Guarded<float>* out : {&y, &dx, &dw, &db, &ws}) out->poison_body();
  gpu::conv2d_forward(s, x.get(), w.get(), c.bias ? b.get() : nullptr, y.get(), c.relu, ws.get(), nullptr);
  gpu::conv2d_backward_data(s, g.get(), w.get(), dx.get(), ws.get(), nullptr);
  gpu::conv2d_backward_weights(s, x.get(), g.get(), dw.get(), db.get(), ws.get(), nullptr);
  ConvResults r{y.read("conv y"), dx.read("conv dx"), dw.read("conv dW"), db.read("conv dbias")};
  ws.read("conv workspace");  // guards only
  return r;
}

}  // namespace isonet::test
