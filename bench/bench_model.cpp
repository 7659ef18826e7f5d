// bench_model.cpp: whole-model benchmark of our Trainer (the PyTorch side is
// bench/torch_model_bench.py; bench/run_model_bench.sh runs both and prints the comparison).
// It times, on one device:
//   train   one training step as in training: forward with dropout, the paper's PSNR loss,
//           backward, one Adam update (lr 5e-3), ending with the loss read back to the host;
//   forward one inference pass (no dropout) through Trainer::predict, output on the input's device.
// Inputs and targets are fixed [batch,1,patch,patch] tensors already on the device, so host->device
// transfers of the batch are not part of the time (as on the PyTorch side). Every iteration is
// timed with a host clock around a fully synchronized step (the loss download, or predict's own
// synchronization); on CUDA each step is also bracketed by CUDA events on the legacy default
// stream (which orders with the trainer's blocking stream), reported as event_median_ms.
// It reports median, min, max, 10th/90th percentiles and patches/s; it never fails on a time.
//
//   bench_model --device cpu|cuda --arch isonet2|isonet1 [--batch 16] [--patch 128] [--warmup W]
//               [--iters N] [--threads T] [--conv auto|direct|fft] [--math fp32|tf32] [--record]
//               [--json] [--probe]
// --conv sets the network's conv algorithm (TrainerOptions::conv.algo; default auto, which on CUDA
// means direct for now); it is printed in both lines ("conv" in the JSON).
// --math sets the arithmetic of the CUDA convs (TrainerOptions::conv.math; default fp32; tf32: tensor
// cores); it is printed in both lines ("math" in the JSON; "precision" is what was computed, fp32
// on the CPU, which ignores --math and says so on stderr).
// --record trains with recorded steps (TrainerOptions::record_steps: on CUDA one CUDA graph launch
// per step; "record" in the JSON); the forward is not recorded.
// --threads sets the OpenMP team of the CPU ops (default: OpenMP's default, all cores).
// --json prints only the JSON line (otherwise a human line follows it). --probe prints
// {"built_with_cuda":..,"cuda_devices":..} and exits (used by run_model_bench.sh).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "kernels/device.h"
#include "kernels/error.h"
#include "kernels/rng.h"
#include "nn/model.h"
#include "nn/trainer.h"
#if ISONET_HAS_CUDA
#include "kernels/cuda_check.h"
#endif

using namespace isonet;

namespace {

struct Options {
  std::string device = "cpu";
  std::string arch = "isonet2";
  std::string conv = "auto";
  std::string math = "fp32";
  int batch = 16, patch = 128, warmup = 2, iters = 10, threads = 0;
  bool json_only = false, probe = false, record = false;
};

const char* kUsage =
    "usage: bench_model --device cpu|cuda --arch isonet2|isonet1 [--batch 16] [--patch 128] [--warmup W]\n"
    "                   [--iters N] [--threads T] [--conv auto|direct|fft] [--math fp32|tf32] [--record]\n"
    "                   [--json] [--probe]\n";

int parse_int(const std::string& flag, const char* text, int min) {
  char* end = nullptr;
  const long v = std::strtol(text, &end, 10);
  ISONET_CHECK(end != text && *end == '\0' && v >= min && v <= 1 << 20, flag,
               " needs an integer >= ", min, ", got '", text, "'");
  return int(v);
}

Options parse(int argc, char** argv) {
  Options o;
  const std::map<std::string, std::pair<int*, int>> ints = {
      {"--batch", {&o.batch, 1}}, {"--patch", {&o.patch, 1}},     {"--warmup", {&o.warmup, 0}},
      {"--iters", {&o.iters, 1}}, {"--threads", {&o.threads, 1}}};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--json") {
      o.json_only = true;
    } else if (a == "--probe") {
      o.probe = true;
    } else if (a == "--record") {
      o.record = true;
    } else if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "--device" || a == "--arch" || a == "--conv" || a == "--math" || ints.count(a)) {
      ISONET_CHECK(i + 1 < argc, a, " needs a value\n", kUsage);
      const char* v = argv[++i];
      if (a == "--device")
        o.device = v;
      else if (a == "--arch")
        o.arch = v;
      else if (a == "--conv")
        o.conv = v;
      else if (a == "--math")
        o.math = v;
      else
        *ints.at(a).first = parse_int(a, v, ints.at(a).second);
    } else {
      fail("unknown argument '", a, "'\n", kUsage);
    }
  }
  ISONET_CHECK(o.device == "cpu" || o.device == "cuda", "--device must be cpu or cuda, got '",
               o.device, "'");
  parse_conv_algo(o.conv, "--conv");  // a bad value fails here, before any work
  parse_conv_math(o.math, "--math");
  return o;
}

// Spatial divisor of each conv's level (nn/README.md): IsoNet-2's enc2/dec2 run at 1/2 and mid at
// 1/4 of the patch side; every other conv at full size.
int level_divisor(const std::string& layer) {
  if (layer == "enc2" || layer == "dec2") return 2;
  if (layer == "mid") return 4;
  return 1;
}

// Multiply-adds of the convolutions for one batch: forward, and the training step's backward
// (weights for every conv, data for every conv but the first, whose input needs no gradient).
// Pooling, upsampling, ReLU, dropout, loss and Adam are bandwidth-bound and left out.
struct ConvWork {
  double forward_macs = 0, backward_macs = 0;
};

ConvWork conv_work(const ParamLayout& layout, int n, int patch) {
  ConvWork w;
  bool first = true;
  for (const ParamSpec& s : layout.specs()) {
    if (s.dims.size() != 4) continue;  // biases
    const std::string layer = s.name.substr(0, s.name.find('.'));
    const double side = double(patch) / level_divisor(layer);
    const double macs = double(n) * side * side * s.dims[0] * s.dims[1] * s.dims[2] * s.dims[3];
    w.forward_macs += macs;
    w.backward_macs += first ? macs : 2 * macs;
    first = false;
  }
  return w;
}

struct Stats {
  double median = 0, min = 0, max = 0, p10 = 0, p90 = 0;
};

// Percentiles by linear interpolation between order statistics.
Stats stats(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto q = [&](double p) {
    const double x = p * double(v.size() - 1);
    const size_t i = size_t(x);
    return i + 1 < v.size() ? v[i] + (x - double(i)) * (v[i + 1] - v[i]) : v[i];
  };
  return {q(0.5), v.front(), v.back(), q(0.1), q(0.9)};
}

// Deterministic batch: inputs uniform in [0,1), targets = inputs + uniform noise of +-0.1, so the
// loss is finite and the network trains as it would on real pairs.
void make_batch(int n, int patch, Device device, Tensor& x, Tensor& t) {
  const size_t count = size_t(n) * patch * patch;
  std::vector<float> xv(count), tv(count);
  for (size_t i = 0; i < count; ++i) {
    xv[i] = counter_random_u32(1, 0, i) * (1.0f / 4294967296.0f);
    tv[i] = xv[i] + 0.2f * (counter_random_u32(1, 1, i) * (1.0f / 4294967296.0f) - 0.5f);
  }
  x = Tensor::from_vector({n, 1, patch, patch}, xv, device);
  t = Tensor::from_vector({n, 1, patch, patch}, tv, device);
}

// Times `step` (which must return with the device idle) `iters` times after `warmup` untimed runs.
// `launch` is the part bracketed by CUDA events; `finish` waits for it. On the CPU the events are
// skipped and launch + finish run back to back.
struct Timings {
  std::vector<double> host_ms, event_ms;
};

Timings time_steps(Device device, int warmup, int iters, const std::function<void()>& launch,
                   const std::function<void()>& finish) {
  using clock = std::chrono::steady_clock;
  Timings t;
  for (int i = 0; i < warmup; ++i) {
    launch();
    finish();
  }
#if ISONET_HAS_CUDA
  cudaEvent_t a = nullptr, b = nullptr;
  if (device == Device::CUDA) {
    CUDA_CHECK("bench_model events", cudaEventCreate(&a));
    CUDA_CHECK("bench_model events", cudaEventCreate(&b));
  }
#endif
  for (int i = 0; i < iters; ++i) {
    const auto t0 = clock::now();
#if ISONET_HAS_CUDA
    if (device == Device::CUDA) CUDA_CHECK("bench_model timing", cudaEventRecord(a, 0));
#endif
    launch();
#if ISONET_HAS_CUDA
    if (device == Device::CUDA) CUDA_CHECK("bench_model timing", cudaEventRecord(b, 0));
#endif
    finish();
#if ISONET_HAS_CUDA
    if (device == Device::CUDA) {
      CUDA_CHECK("bench_model timing", cudaEventSynchronize(b));
      float ms = 0.f;
      CUDA_CHECK("bench_model timing", cudaEventElapsedTime(&ms, a, b));
      t.event_ms.push_back(ms);
    }
#endif
    t.host_ms.push_back(std::chrono::duration<double, std::milli>(clock::now() - t0).count());
  }
#if ISONET_HAS_CUDA
  if (a) cudaEventDestroy(a);
  if (b) cudaEventDestroy(b);
#endif
  return t;
}

// {"median_ms":..,...,"patches_per_s":..,"gflop":..,"gflops":..[,"event_median_ms":..]}
std::string json_block(const Timings& t, int batch, double macs) {
  const Stats s = stats(t.host_ms);
  const double gflop = 2.0 * macs * 1e-9;
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "{\"median_ms\":%.4f,\"min_ms\":%.4f,\"max_ms\":%.4f,\"p10_ms\":%.4f,\"p90_ms\":%.4f,"
                "\"patches_per_s\":%.3f,\"gflop\":%.4f,\"gflops\":%.2f",
                s.median, s.min, s.max, s.p10, s.p90, batch / (s.median * 1e-3), gflop, gflop / (s.median * 1e-3));
  std::string out = buf;
  if (!t.event_ms.empty()) {
    std::snprintf(buf, sizeof buf, ",\"event_median_ms\":%.4f", stats(t.event_ms).median);
    out += buf;
  }
  out += ",\"all_ms\":[";  // every iteration, in order (drifts and outliers show here)
  for (size_t i = 0; i < t.host_ms.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.3f", i ? "," : "", t.host_ms[i]);
    out += buf;
  }
  return out + "]}";
}

std::string human(const char* what, const Timings& t, int batch, double macs) {
  const Stats s = stats(t.host_ms);
  char buf[256];
  std::snprintf(buf, sizeof buf, "%s %.2f ms median (min %.2f, max %.2f), %.1f patches/s, %.1f GFLOP/s", what,
                s.median, s.min, s.max, batch / (s.median * 1e-3), 2.0 * macs * 1e-9 / (s.median * 1e-3));
  std::string out = buf;
  if (!t.event_ms.empty()) {
    std::snprintf(buf, sizeof buf, " [events %.2f ms]", stats(t.event_ms).median);
    out += buf;
  }
  return out;
}

int run(const Options& o) {
  if (o.probe) {
    std::printf("{\"built_with_cuda\":%s,\"cuda_devices\":%d}\n", built_with_cuda() ? "true" : "false",
                cuda_device_count());
    return 0;
  }
  if (o.threads > 0) omp_set_num_threads(o.threads);  // before the first CPU op fixes the team size
  const Device device = select_device(o.device);
  const Architecture arch = parse_architecture(o.arch);
  const ConvSettings conv{parse_conv_algo(o.conv, "--conv"), parse_conv_math(o.math, "--math")};
  if (device == Device::CPU && conv.math == Conv2dMath::Tf32)
    std::fprintf(stderr, "bench_model: --math tf32 applies to CUDA only; the CPU computes the convolutions in fp32\n");
  // What the convs compute in: the CPU ignores the math.
  const char* precision = device == Device::CPU ? "fp32" : conv_math_name(conv.math);
  Model model = Model::create(arch, /*seed=*/1);  // dropout 0.2, the paper's
  TrainerOptions tro;                             // Adam lr 5e-3
  tro.conv = conv;
  tro.record_steps = o.record;
  Trainer trainer(model, device, tro);
  Tensor x, t;
  make_batch(o.batch, o.patch, device, x, t);
  const ConvWork work = conv_work(trainer.layout(), o.batch, o.patch);

  float loss = 0.f;
  const Timings train = time_steps(
      device, o.warmup, o.iters, [&] { trainer.train_step_async(x, t); }, [&] { loss = trainer.last_loss(); });
  ISONET_CHECK(std::isfinite(loss), "the training loss became ", loss);
  Tensor y;
  const Timings fwd = time_steps(
      device, o.warmup, o.iters, [&] { y = trainer.predict(x); }, [] {});

  const int threads = device == Device::CPU ? omp_get_max_threads() : 0;
  std::printf(
      "{\"impl\":\"isonet-cuda\",\"device\":\"%s\",\"arch\":\"%s\",\"conv\":\"%s\",\"math\":\"%s\",\"record\":%s,"
      "\"batch\":%d,\"patch\":%d,\"threads\":%d,\"precision\":\"%s\",\"warmup\":%d,\"iters\":%d,\"final_loss\":%.6f,"
      "\"train\":%s,\"forward\":%s}\n",
      o.device.c_str(), architecture_name(arch), conv_algo_name(conv.algo), conv_math_name(conv.math),
      o.record ? "true" : "false", o.batch, o.patch, threads, precision, o.warmup, o.iters, loss,
      json_block(train, o.batch, work.forward_macs + work.backward_macs).c_str(),
      json_block(fwd, o.batch, work.forward_macs).c_str());
  if (!o.json_only)
    std::printf("isonet-cuda %s %s conv %s math %s%s batch %d patch %d%s: %s; %s\n", o.device.c_str(),
                architecture_name(arch), conv_algo_name(conv.algo), conv_math_name(conv.math),
                o.record ? " recorded" : "", o.batch, o.patch,
                threads ? (" threads " + std::to_string(threads)).c_str() : "",
                human("train step", train, o.batch, work.forward_macs + work.backward_macs).c_str(),
                human("forward", fwd, o.batch, work.forward_macs).c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_model: %s\n", e.what());
    return 1;
  }
}
