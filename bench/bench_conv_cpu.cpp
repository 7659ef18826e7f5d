// bench_conv_cpu.cpp: the CPU convolution's two algorithms side by side, per layer shape: the
// direct path (AVX2 kernels / im2col + sgemm) and the frequency-domain path (conv2d_fft.h), both
// forced through Conv2dShape::algo, for forward (bias + ReLU), backward data and backward weights
// (+ dbias), and what Conv2dAlgo::Auto picks (the cost model conv2d_fft_preferred). Used to
// calibrate that model and to record the gains (bench/results/2026-11-23_cpu_conv_fft.md).
//
//   bench_conv_cpu [--set models|small|all] [--batches 1,4,16] [--sides 32,64,128] [--reps N]
//                  [--threads T] [--csv]
//   bench_conv_cpu --fftw-table
// --fftw-table prints, for every 7-smooth length m <= 512, the time of one m x m FFTW real
//   transform (r2c and c2r averaged, FFTW_ESTIMATE, single precision) in ns per
//   point*log2(points), fastest of 5 rounds: the table kFftwLengths of conv2d_fft.cpp.
// --set models: every conv of IsoNet-1 and IsoNet-2 (nn/README.md) for the given input sides and
//   batches; small: the tiny shapes of the tests plus a few mid-size ones; all: both.
// Each time is the fastest of N runs (default 3) after one warm-up run: on a machine shared with
// other jobs the minimum is the least disturbed estimate of what the code costs. --csv prints one
// machine-readable line per shape instead of the Markdown table. It never fails on a time.
#include <fftw3.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/conv2d_fft.h"
#include "kernels/error.h"
#include "kernels/rng.h"

using namespace isonet;

namespace {

struct Layer {
  std::string name;
  Conv2dShape s;
};

// The convolutions of both networks for input side `side` and batch n (nn/README.md).
std::vector<Layer> model_layers(int n, int side) {
  auto L = [&](const char* name, int ci, int co, int div, int k) {
    return Layer{name, Conv2dShape{n, ci, co, side / div, side / div, k}};
  };
  return {L("i1.conv1", 1, 64, 1, 9), L("i1.conv2", 64, 32, 1, 5), L("i1.conv3", 32, 1, 1, 5),
          L("i2.enc1", 1, 16, 1, 7),  L("i2.enc2", 16, 32, 2, 7),  L("i2.mid", 32, 64, 4, 7),
          L("i2.dec2", 96, 32, 2, 7), L("i2.dec1", 48, 16, 1, 7),  L("i2.out", 16, 1, 1, 1)};
}

std::vector<Layer> small_layers() {
  // The conv shapes of test_ops_cpu.cpp and test_ops_gradcheck.cpp, then a few mid-size ones.
  const Conv2dShape shapes[] = {
      {3, 1, 16, 9, 11, 7},    {2, 3, 5, 7, 9, 3},     {2, 16, 33, 5, 7, 5},   {2, 96, 16, 5, 7, 7},
      {2, 3, 96, 5, 3, 3},     {2, 3, 5, 7, 11, 9},    {2, 96, 6, 9, 130, 7},  {2, 16, 8, 9, 130, 9},
      {2, 32, 1, 37, 130, 5},  {2, 16, 32, 16, 16, 7}, {4, 32, 32, 24, 24, 5}, {8, 64, 64, 16, 16, 3},
      {4, 64, 64, 32, 32, 5},  {1, 96, 32, 64, 64, 7}, {2, 48, 16, 128, 128, 7},
  };
  std::vector<Layer> out;
  for (const Conv2dShape& s : shapes) out.push_back({"small", s});
  return out;
}

double fastest_ms(const std::function<void()>& f, int reps) {
  f();  // warm-up: plans, page faults of the outputs and workspace
  std::vector<double> t;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return *std::min_element(t.begin(), t.end());
}

struct Times {
  double fwd, bwd_data, bwd_weights;
  double total() const { return fwd + bwd_data + bwd_weights; }
};

Times time_algo(Conv2dShape s, Conv2dAlgo a, int reps) {
  s.algo = a;
  const size_t nx = size_t(s.n) * s.c_in * s.h * s.w, ny = size_t(s.n) * s.c_out * s.h * s.w;
  const size_t nw = size_t(s.c_out) * s.c_in * s.k * s.k;
  auto fill = [](size_t count, uint64_t seed) {
    std::vector<float> v(count);
    for (size_t i = 0; i < count; ++i) v[i] = float(counter_random_u32(seed, 0, i)) * 0x1p-31f - 1.f;  // [-1, 1)
    return v;
  };
  const auto x = fill(nx, 1), w = fill(nw, 2), b = fill(s.c_out, 3), dy = fill(ny, 4);
  std::vector<float> y(ny), dx(nx), dw(nw), db(s.c_out), ws(cpu::conv2d_workspace_floats(s));
  Times t;
  t.fwd = fastest_ms([&] { cpu::conv2d_forward(s, x.data(), w.data(), b.data(), y.data(), true, ws.data()); }, reps);
  t.bwd_data = fastest_ms([&] { cpu::conv2d_backward_data(s, dy.data(), w.data(), dx.data(), ws.data()); }, reps);
  t.bwd_weights = fastest_ms(
      [&] { cpu::conv2d_backward_weights(s, x.data(), dy.data(), dw.data(), db.data(), ws.data()); }, reps);
  return t;
}

std::vector<int> parse_list(const char* flag, const std::string& text) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos <= text.size()) {
    const size_t comma = std::min(text.find(',', pos), text.size());
    const std::string item = text.substr(pos, comma - pos);
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    ISONET_CHECK(!item.empty() && *end == '\0' && v >= 1 && v <= 4096, flag,
                 " needs a comma-separated list of integers 1..4096, got '", text, "'");
    out.push_back(int(v));
    pos = comma + 1;
  }
  return out;
}

// See the file comment (--fftw-table). One thread; each (m, round) plans, times, destroys.
void print_fftw_table() {
  std::vector<int> lengths;
  for (int m = 2; m <= 512; ++m) {
    int r = m;
    for (int p : {2, 3, 5, 7})
      while (r % p == 0) r /= p;
    if (r == 1) lengths.push_back(m);
  }
  std::vector<double> best(lengths.size(), 1e30);
  for (int round = 0; round < 5; ++round)
    for (size_t i = 0; i < lengths.size(); ++i) {
      const int m = lengths[i];
      float* real = fftwf_alloc_real(size_t(m) * m);
      fftwf_complex* cplx = fftwf_alloc_complex(size_t(m) * (m / 2 + 1));
      ISONET_CHECK(real && cplx, "out of memory");
      fftwf_plan r2c = fftwf_plan_dft_r2c_2d(m, m, real, cplx, FFTW_ESTIMATE);
      fftwf_plan c2r = fftwf_plan_dft_c2r_2d(m, m, cplx, real, FFTW_ESTIMATE);
      ISONET_CHECK(r2c && c2r, "FFTW could not plan ", m, "x", m);
      for (int j = 0; j < m * m; ++j) real[j] = float(j % 13) * 0.1f;
      const int reps = std::max(3, 300000 / (m * m));
      fftwf_execute(r2c);
      fftwf_execute(c2r);
      const auto t0 = std::chrono::steady_clock::now();
      for (int r = 0; r < reps; ++r) {
        fftwf_execute(r2c);
        fftwf_execute(c2r);
      }
      const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
      best[i] = std::min(best[i], ns / reps / 2);
      fftwf_destroy_plan(r2c);
      fftwf_destroy_plan(c2r);
      fftwf_free(real);
      fftwf_free(cplx);
    }
  std::printf("m, ns per point*log2(points) of one m x m real transform\n");
  for (size_t i = 0; i < lengths.size(); ++i) {
    const double points = double(lengths[i]) * lengths[i];
    std::printf("{%d, %.3ff},\n", lengths[i], best[i] / (points * std::log2(std::max(2.0, points))));
  }
}

int parse_int(const char* flag, const char* text) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  ISONET_CHECK(end != text && *end == '\0' && v >= 1 && v <= 1000, flag, " needs an integer 1..1000, got '", text,
               "'");
  return int(v);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    std::string set = "all";
    int reps = 3;
    bool csv = false;
    std::vector<int> batches = {1, 4, 16}, sides = {32, 64, 128};
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      auto value = [&]() -> const char* {
        ISONET_CHECK(i + 1 < argc, a, " needs a value");
        return argv[++i];
      };
      if (a == "--set") {
        set = value();
        ISONET_CHECK(set == "models" || set == "small" || set == "all", "--set must be models, small or all");
      } else if (a == "--batches") {
        batches = parse_list("--batches", value());
      } else if (a == "--sides") {
        sides = parse_list("--sides", value());
      } else if (a == "--reps") {
        reps = parse_int("--reps", value());
      } else if (a == "--threads") {
        omp_set_num_threads(parse_int("--threads", value()));
      } else if (a == "--csv") {
        csv = true;
      } else if (a == "--fftw-table") {
        print_fftw_table();
        return 0;
      } else {
        fail("unknown argument '", a,
             "'\nusage: bench_conv_cpu [--set models|small|all] [--batches 1,4,16] [--sides 32,64,128] [--reps N] "
             "[--threads T] [--csv] | --fftw-table");
      }
    }
    std::vector<Layer> layers;
    if (set != "small")
      for (int n : batches)
        for (int side : sides)
          for (const Layer& l : model_layers(n, side)) layers.push_back(l);
    if (set != "models")
      for (const Layer& l : small_layers()) layers.push_back(l);
    std::printf(csv ? "name,n,c_in,c_out,h,w,k,direct_fwd,direct_bwd_data,direct_bwd_weights,fft_fwd,"
                      "fft_bwd_data,fft_bwd_weights,auto_fft\n"
                    : "threads %d, fastest of %d after 1 warm-up, ms\n\n"
                      "| layer | n | c_in->c_out | h x w | k | direct fwd / bwd data / bwd weights | "
                      "FFT fwd / bwd data / bwd weights | direct/FFT (sum) | Auto |\n"
                      "|---|---|---|---|---|---|---|---|---|\n",
                omp_get_max_threads(), reps);
    for (const Layer& l : layers) {
      const Conv2dShape& s = l.s;
      const Times d = time_algo(s, Conv2dAlgo::Direct, reps);
      const Times f = time_algo(s, Conv2dAlgo::Fft, reps);
      const bool pick = cpu::conv2d_fft_preferred(s);
      if (csv)
        std::printf("%s,%d,%d,%d,%d,%d,%d,%.4f,%.4f,%.4f,%.4f,%.4f,%.4f,%d\n", l.name.c_str(), s.n, s.c_in,
                    s.c_out, s.h, s.w, s.k, d.fwd, d.bwd_data, d.bwd_weights, f.fwd, f.bwd_data,
                    f.bwd_weights, pick ? 1 : 0);
      else
        std::printf("| %s | %d | %d->%d | %dx%d | %d | %.3f / %.3f / %.3f | %.3f / %.3f / %.3f | %.2f | %s |\n",
                    l.name.c_str(), s.n, s.c_in, s.c_out, s.h, s.w, s.k, d.fwd, d.bwd_data,
                    d.bwd_weights, f.fwd, f.bwd_data, f.bwd_weights, d.total() / f.total(), pick ? "FFT" : "direct");
      std::fflush(stdout);
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_conv_cpu: %s\n", e.what());
    return 1;
  }
}
