// test_nn_conv_algo.cpp: the per-network conv settings (TrainerOptions::conv, make_network):
// algorithm and math names and parsing, that the algorithm reaches the workspace sizing, that
// training with every conv forced to the frequency domain follows training with the direct sums on
// the CPU, up to the FFT's rounding, that the CPU ignores the math (Tf32 trains bit for bit as
// Fp32), and how far training with the GPU's TF32 rounding (emulated on the CPU) drifts from fp32
// (the calibration of kTf32Tolerance). (CUDA FFT and TF32 vs CPU: tests/test_cuda_model_parity.cpp.)
#include <cmath>
#include <string>

#include "kernels/error.h"
#include "nn/model.h"
#include "nn/network.h"
#include "nn/trainer.h"
#include "nn_toy_data.h"
#include "test_util.h"
#include "tf32_emulation.h"
#include "training_tolerance.h"

using namespace isonet;

namespace {

using test::WeightDiff;
using test::weight_diff;

TrainerOptions options(Conv2dAlgo algo, Conv2dMath math = Conv2dMath::Fp32) {
  TrainerOptions o;
  o.dropout_seed = 99;
  o.conv = {algo, math};
  return o;
}

}  // namespace

TEST_CASE("conv algo: names round-trip, bad names are clear errors") {
  for (Conv2dAlgo a : {Conv2dAlgo::Auto, Conv2dAlgo::Direct, Conv2dAlgo::Fft})
    CHECK(parse_conv_algo(conv_algo_name(a), "--conv") == a);
  try {
    parse_conv_algo("FFT", "train: --conv");
    FAIL("no error for 'FFT'");
  } catch (const Error& e) {
    const std::string msg = e.what();
    CHECK(msg.find("train: --conv") != std::string::npos);
    CHECK(msg.find("'FFT'") != std::string::npos);
    CHECK(msg.find("auto, direct, fft") != std::string::npos);
  }
  CHECK_THROWS_AS(parse_conv_algo("", "--conv"), Error);
}

TEST_CASE("conv math: names round-trip, bad names are clear errors") {
  for (Conv2dMath m : {Conv2dMath::Fp32, Conv2dMath::Tf32})
    CHECK(parse_conv_math(conv_math_name(m), "--math") == m);
  CHECK(std::string(conv_math_name(Conv2dMath::Fp32)) == "fp32");
  CHECK(std::string(conv_math_name(Conv2dMath::Tf32)) == "tf32");
  for (const char* bad : {"TF32", "fp16", "bf16", ""}) {
    CAPTURE(std::string(bad));
    try {
      parse_conv_math(bad, "train: --math");
      FAIL("no error");
    } catch (const Error& e) {
      const std::string msg = e.what();
      CHECK(msg.find("train: --math") != std::string::npos);
      CHECK(msg.find("'" + std::string(bad) + "'") != std::string::npos);
      CHECK(msg.find("fp32, tf32") != std::string::npos);
    }
  }
}

TEST_CASE("conv algo: the network's setting decides the workspace it plans") {
  for (Architecture arch : {Architecture::IsoNet1, Architecture::IsoNet2}) {
    CAPTURE(std::string(architecture_name(arch)));
    CHECK(make_network(arch)->conv().algo == Conv2dAlgo::Auto);
    CHECK(make_network(arch)->conv().math == Conv2dMath::Fp32);
    const auto direct = make_network(arch, {Conv2dAlgo::Direct}), fft = make_network(arch, {Conv2dAlgo::Fft});
    CHECK(fft->conv().algo == Conv2dAlgo::Fft);
    // At batch 1 the CPU's Auto keeps every layer direct (nn/README.md), so Auto plans what Direct
    // does, and forcing the FFT needs the spectra of its kernels: a larger workspace. The arena
    // (activations) does not depend on the algorithm.
    const Network::PlanMemory a = make_network(arch)->plan_memory(Device::CPU, 1, 32, 32, true);
    const Network::PlanMemory d = direct->plan_memory(Device::CPU, 1, 32, 32, true);
    const Network::PlanMemory f = fft->plan_memory(Device::CPU, 1, 32, 32, true);
    CHECK(a.workspace_floats == d.workspace_floats);
    CHECK(f.workspace_floats > d.workspace_floats);
    CHECK(f.arena_bytes == d.arena_bytes);
    // The CPU ignores the math: the same plan.
    const auto tf32 = make_network(arch, {Conv2dAlgo::Auto, Conv2dMath::Tf32});
    CHECK(tf32->conv().math == Conv2dMath::Tf32);
    const Network::PlanMemory t = tf32->plan_memory(Device::CPU, 1, 32, 32, true);
    CHECK(t.workspace_floats == a.workspace_floats);
    CHECK(t.arena_bytes == a.arena_bytes);
  }
}

// Conv2dMath::Tf32 is a CUDA setting; the CPU computes in fp32 whatever it says (kernels/conv2d.h),
// so a CPU trainer given Tf32 must do exactly the arithmetic of Fp32: the same losses and weights,
// bit for bit (same weights, data and dropout masks; the CPU path is deterministic).
TEST_CASE("conv math: Tf32 on the CPU trains bit for bit as Fp32 (the CPU ignores it)") {
  const int steps = 4, n = 3, h = 16, w = 20;
  const Model m = Model::create(Architecture::IsoNet2, 23, 0.2f);
  Trainer fp32(m, Device::CPU, options(Conv2dAlgo::Auto, Conv2dMath::Fp32)),
      tf32(m, Device::CPU, options(Conv2dAlgo::Auto, Conv2dMath::Tf32));
  CHECK(tf32.options().conv.math == Conv2dMath::Tf32);
  for (int s = 0; s < steps; ++s) {
    Tensor x, t;
    test::toy_pair(n, h, w, 700 + s, x, t);
    const float lf = fp32.train_step(x, t), lt = tf32.train_step(x, t);
    INFO("step " << s + 1 << ": fp32 loss " << lf << ", tf32 loss " << lt);
    CHECK(std::isfinite(lf));
    CHECK(lt == lf);
  }
  const std::vector<float> wf = fp32.weights(), wt = tf32.weights();
  REQUIRE(wf.size() == wt.size());
  CHECK_CLOSE_ARRAYS("weights, tf32 vs fp32 on the CPU", wt.data(), wf.data(), wf.size(), 0.0, 0.0);
  // Training did move the weights, so the comparison means something.
  CHECK(weight_diff(wf, m.weights).rms > 1e-4);
}

// Training with every conv (but the 1x1s) in the frequency domain against the direct sums, from
// the same weights, data and dropout masks (the cases of test_cuda_model_parity.cpp). They differ
// only by rounding, bounded by test::kFftTolerance (training_tolerance.h, with the measurements).
TEST_CASE("conv algo: training with the FFT convs follows the direct ones on the CPU") {
  struct Case {
    Architecture arch;
    int steps, n, h, w;
  };
  const test::TrainingTolerance& tol = test::kFftTolerance;
  for (const Case& c : {Case{Architecture::IsoNet2, 20, 4, 16, 20}, Case{Architecture::IsoNet1, 5, 3, 15, 13}}) {
    CAPTURE(std::string(architecture_name(c.arch)));
    const Model m = Model::create(c.arch, 17, 0.2f);
    Trainer direct(m, Device::CPU, options(Conv2dAlgo::Direct)), fft(m, Device::CPU, options(Conv2dAlgo::Fft));
    std::vector<Tensor> xs(c.steps), ts(c.steps);
    for (int s = 0; s < c.steps; ++s) test::toy_pair(c.n, c.h, c.w, 500 + s, xs[s], ts[s]);

    direct.compute_gradients(xs[0], ts[0]);
    fft.compute_gradients(xs[0], ts[0]);
    test::check_step1_gradients(m.layout, direct.gradients(), fft.gradients());

    float worst = 0;
    for (int s = 0; s < c.steps; ++s) {
      const float ld = direct.train_step(xs[s], ts[s]), lf = fft.train_step(xs[s], ts[s]);
      INFO("step " << s + 1 << ": direct loss " << ld << ", fft loss " << lf);
      test::check_step_loss(ld, lf, tol);
      worst = std::max(worst, std::fabs(ld - lf));
    }
    const std::vector<float> wd = direct.weights(), wf = fft.weights();
    const WeightDiff d = weight_diff(wd, wf), moved = weight_diff(wd, m.weights);
    MESSAGE(std::string(architecture_name(c.arch)) << " (conv fft vs direct): worst loss diff " << worst
                                                   << ", weights rms diff " << d.rms << ", max " << d.max << ", "
                                                   << d.above << " beyond 1e-3; moved rms " << moved.rms);
    // Training did move the weights (rms > 1e-3), so the comparison means something.
    test::check_final_weights(wd, wf, m.weights, c.steps, 5e-3, 1e-3, tol);
  }
}

TEST_CASE("conv math: TF32 arithmetic emulated on the CPU drifts from fp32 within kTf32Tolerance") {
  // The setting of the CUDA parity test "CUDA with TF32 tensor cores vs CPU"
  // (test_cuda_model_parity.cpp): there the GPU's TF32 convs are compared with the CPU's fp32 ones;
  // here the same TF32 rounding (every conv operand rounded as the GPU kernels do, fp32 sums) runs
  // on the CPU, so the bound that test applies is measured without a GPU.
  const Model m = Model::create(Architecture::IsoNet2, 17, 0.2f);
  const TrainerOptions opt = options(Conv2dAlgo::Direct);
  Trainer fp32(m, Device::CPU, opt), tf32(m, std::make_unique<test::Tf32EmulatingCpuBackend>(), opt);
  const int steps = 20;
  std::vector<Tensor> xs(steps), ts(steps);
  for (int s = 0; s < steps; ++s) test::toy_pair(4, 16, 20, 500 + s, xs[s], ts[s]);
  fp32.compute_gradients(xs[0], ts[0]);
  tf32.compute_gradients(xs[0], ts[0]);
  test::check_step1_gradients_normwise(m.layout, fp32.gradients(), tf32.gradients(), test::kTf32Step1Normwise);
  double worst_loss = 0;
  for (int s = 0; s < steps; ++s) {
    const float la = fp32.train_step(xs[s], ts[s]), lb = tf32.train_step(xs[s], ts[s]);
    worst_loss = std::max(worst_loss, std::fabs(double(la) - lb));
    INFO("step " << s + 1 << ": fp32 loss " << la << ", tf32 loss " << lb);
    test::check_step_loss(la, lb, test::kTf32Tolerance);
  }
  MESSAGE("TF32 emulation vs fp32, 20 IsoNet-2 steps: worst loss difference " << worst_loss << " dB");
  test::check_final_weights(fp32.weights(), tf32.weights(), m.weights, steps, 5e-3, 1e-3, test::kTf32Tolerance);
  const WeightDiff d = weight_diff(fp32.weights(), tf32.weights());
  MESSAGE("final weights: rms " << d.rms << ", max " << d.max << ", " << d.above << " of " << m.weights.size()
                                << " beyond 1e-3");
}
