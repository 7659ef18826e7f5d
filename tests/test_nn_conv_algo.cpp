// test_nn_conv_algo.cpp: the per-network conv algorithm (TrainerOptions::conv_algo, make_network):
// names and parsing, that the setting reaches the workspace sizing, and that training with every
// conv forced to the frequency domain follows training with the direct sums on the CPU, up to the
// FFT's rounding. (CUDA FFT vs CPU: tests/test_cuda_model_parity.cpp.)
#include <cmath>
#include <string>

#include "kernels/error.h"
#include "nn/model.h"
#include "nn/network.h"
#include "nn/trainer.h"
#include "nn_toy_data.h"
#include "test_util.h"
#include "training_tolerance.h"

using namespace isonet;

namespace {

using test::WeightDiff;
using test::weight_diff;

TrainerOptions options(Conv2dAlgo algo) {
  TrainerOptions o;
  o.dropout_seed = 99;
  o.conv_algo = algo;
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

TEST_CASE("conv algo: the network's setting decides the workspace it plans") {
  for (Architecture arch : {Architecture::IsoNet1, Architecture::IsoNet2}) {
    CAPTURE(std::string(architecture_name(arch)));
    CHECK(make_network(arch)->conv_algo() == Conv2dAlgo::Auto);
    const auto direct = make_network(arch, Conv2dAlgo::Direct), fft = make_network(arch, Conv2dAlgo::Fft);
    CHECK(fft->conv_algo() == Conv2dAlgo::Fft);
    // At batch 1 the CPU's Auto keeps every layer direct (nn/README.md), so Auto plans what Direct
    // does, and forcing the FFT needs the spectra of its kernels: a larger workspace. The arena
    // (activations) does not depend on the algorithm.
    const Network::PlanMemory a = make_network(arch)->plan_memory(Device::CPU, 1, 32, 32, true);
    const Network::PlanMemory d = direct->plan_memory(Device::CPU, 1, 32, 32, true);
    const Network::PlanMemory f = fft->plan_memory(Device::CPU, 1, 32, 32, true);
    CHECK(a.workspace_floats == d.workspace_floats);
    CHECK(f.workspace_floats > d.workspace_floats);
    CHECK(f.arena_bytes == d.arena_bytes);
  }
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
