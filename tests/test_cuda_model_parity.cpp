// test_cuda_model_parity.cpp: the same IsoNet code on the CUDA backend against the CPU backend,
// from identical weights and seeds: inference outputs, step-1 gradients, the loss of every
// training step (dropout ON: the masks are bit-identical on both devices) and the final weights,
// plus device-tensor inputs and no device allocation inside the training loop; and the same
// training with the CUDA convs forced to the frequency domain (TrainerOptions::conv.algo = Fft)
// or run on TF32 tensor cores (conv.math = Tf32); and recorded steps (CUDA graphs) against
// unrecorded ones, bit for bit.
// Skipped without a GPU.
//
// Why the tolerances grow over training: the two backends sum convolutions and reductions in
// different orders, so every forward/backward differs by fp32 rounding (~1e-6 relative). Adam turns
// a gradient's RELATIVE error into an absolute weight error of ~lr * rel per step; for most
// elements rel ~1e-6 and weights stay ~1e-7 apart, but a gradient far below its tensor's scale has
// a large relative error, and one at the noise level can flip sign (a 2*lr jump). Those differences
// feed later steps. The bounds and their measurements: tests/training_tolerance.h (the reordering
// bound for direct convs on both devices, the FFT bound when the GPU runs its convs as FFTs).
#include <algorithm>
#include <cmath>
#include <string>

#include "nn/model.h"
#include "nn_toy_data.h"
#include "nn/trainer.h"
#include "test_util.h"
#include "training_tolerance.h"

using namespace isonet;

namespace {

// Trains `steps` steps on both devices from the same model and compares as described above; the
// GPU's convs run with gpu_algo (the CPU's with Auto).
void training_parity(Architecture arch, int steps, int n, int h, int w, ConvSettings gpu_conv = {}) {
  const Model m = Model::create(arch, 17, 0.2f);
  TrainerOptions opt;
  opt.dropout_seed = 99;
  TrainerOptions gpu_opt = opt;
  gpu_opt.conv = gpu_conv;
  Trainer cpu(m, Device::CPU, opt), gpu(m, Device::CUDA, gpu_opt);
  const bool tf32 = gpu_conv.math == Conv2dMath::Tf32;
  const test::TrainingTolerance& tol = tf32                                ? test::kTf32Tolerance
                                       : gpu_conv.algo == Conv2dAlgo::Fft ? test::kFftTolerance
                                                                          : test::kReorderTolerance;
  std::vector<Tensor> xs(steps), ts(steps);
  for (int s = 0; s < steps; ++s) test::toy_pair(n, h, w, 500 + s, xs[s], ts[s]);

  // Step-1 gradients: fp32 sums in different orders; TF32: normwise per tensor (both bounds and
  // their measurements in training_tolerance.h).
  cpu.compute_gradients(xs[0], ts[0]);
  gpu.compute_gradients(xs[0], ts[0]);
  if (tf32)
    test::check_step1_gradients_normwise(m.layout, cpu.gradients(), gpu.gradients(), test::kTf32Step1Normwise);
  else
    test::check_step1_gradients(m.layout, cpu.gradients(), gpu.gradients());

  size_t bytes_after_first = 0;
  for (int s = 0; s < steps; ++s) {
    const float lc = cpu.train_step(xs[s], ts[s]), lg = gpu.train_step(xs[s], ts[s]);
    if (s == 0) bytes_after_first = device_bytes_in_use(Device::CUDA);
    INFO("step " << s + 1 << ": cpu loss " << lc << ", cuda loss " << lg);
    test::check_step_loss(lc, lg, tol);
  }
  // No device allocation after the first step (fixed batch and patch size).
  CHECK(device_bytes_in_use(Device::CUDA) == bytes_after_first);

  // The rms bound stays far below how far training moved the weights (rms ~1e-2), so a wrong
  // update anywhere is caught; isolated elements may differ by up to the accumulated flips
  // (steps * 2 * lr), but only a small fraction of them beyond 1e-3.
  test::check_final_weights(cpu.weights(), gpu.weights(), m.weights, steps, 5e-3, 1e-3, tol);
}

}  // namespace

TEST_CASE("cuda parity: IsoNet-2, 20 training steps with dropout, CPU vs CUDA") {
  if (!test::gpu_or_skip()) return;
  training_parity(Architecture::IsoNet2, 20, 4, 16, 20);
}

TEST_CASE("cuda parity: IsoNet-2, 20 training steps, CUDA with conv Fft vs CPU") {
  if (!test::gpu_or_skip()) return;
  training_parity(Architecture::IsoNet2, 20, 4, 16, 20, {Conv2dAlgo::Fft, Conv2dMath::Fp32});
}

TEST_CASE("cuda parity: IsoNet-2, 20 training steps, CUDA with TF32 tensor cores vs CPU") {
  if (!test::gpu_or_skip()) return;
  training_parity(Architecture::IsoNet2, 20, 4, 16, 20, {Conv2dAlgo::Auto, Conv2dMath::Tf32});
}

TEST_CASE("cuda parity: IsoNet-1, 5 training steps with dropout, CPU vs CUDA") {
  if (!test::gpu_or_skip()) return;
  training_parity(Architecture::IsoNet1, 5, 3, 15, 13);
}

TEST_CASE("cuda parity: inference on odd batches and sizes, host and device tensors") {
  if (!test::gpu_or_skip()) return;
  for (Architecture arch : {Architecture::IsoNet1, Architecture::IsoNet2}) {
    CAPTURE(std::string(architecture_name(arch)));
    const Model m = Model::create(arch, 23);
    Trainer cpu(m, Device::CPU), gpu(m, Device::CUDA);
    const int h = arch == Architecture::IsoNet2 ? 20 : 19, w = arch == Architecture::IsoNet2 ? 28 : 23;
    const Tensor x = Tensor::from_vector({3, 1, h, w}, test::random_vector(size_t(3) * h * w, 7, 0.f, 1.f));
    const std::vector<float> yc = cpu.predict(x).to_vector();
    // Host tensor in, host tensor out.
    const std::vector<float> yg = gpu.predict(x).to_vector();
    // fp32 convolutions summed in different orders over up to 48*49 = 2352 products: outputs O(1)
    // agree to ~1e-6; 1e-5 absolute + 1e-4 relative leaves 10x margin.
    CHECK_CLOSE_ARRAYS("cuda vs cpu inference", yc.data(), yg.data(), yc.size(), 1e-5, 1e-4);
    // Device tensor in: the result stays on the device and is the same.
    const Tensor xd = x.to(Device::CUDA);
    Tensor yd = gpu.predict(xd);
    CHECK(yd.device() == Device::CUDA);
    CHECK(yd.to_vector() == yg);
    // Raw host pointers.
    std::vector<float> yr(yc.size());
    gpu.predict(x.data(), yr.data(), 3, h, w);
    CHECK(yr == yg);
  }
}

TEST_CASE("cuda parity: training from device tensors equals training from host tensors") {
  if (!test::gpu_or_skip()) return;
  const Model m = Model::create(Architecture::IsoNet2, 29);
  Trainer a(m, Device::CUDA), b(m, Device::CUDA);
  for (int s = 0; s < 3; ++s) {
    Tensor x, t;
    test::toy_pair(2, 12, 16, 700 + s, x, t);
    const float la = a.train_step(x, t);
    const float lb = b.train_step(x.to(Device::CUDA), t.to(Device::CUDA));
    // Same device, same kernels, same order: bit-identical (the GPU kernels are deterministic).
    CHECK(la == lb);
  }
  CHECK(a.weights() == b.weights());
}

TEST_CASE("cuda parity: recorded steps (CUDA graphs) equal unrecorded ones bit for bit") {
  if (!test::gpu_or_skip()) return;
  // Same kernels, arguments and order, replayed from a graph: identical bits, including the
  // dropout masks and Adam scalars that the graph reads from device memory; a batch-size change
  // re-records; interleaved inference and its larger buffers re-record too.
  for (Conv2dMath math : {Conv2dMath::Fp32, Conv2dMath::Tf32}) {
    CAPTURE(std::string(conv_math_name(math)));
    const Model m = Model::create(Architecture::IsoNet2, 41, 0.2f);
    TrainerOptions plain;
    plain.dropout_seed = 8;
    plain.conv.math = math;
    TrainerOptions recorded = plain;
    recorded.record_steps = true;
    Trainer a(m, Device::CUDA, plain), b(m, Device::CUDA, recorded);
    size_t bytes_after_first = 0;
    for (int s = 0; s < 20; ++s) {
      Tensor x, t;
      test::toy_pair(4, 32, 32, 800 + s, x, t);
      const float la = a.train_step(x, t), lb = b.train_step(x, t);
      if (s == 0) bytes_after_first = device_bytes_in_use(Device::CUDA);
      CHECK(la == lb);
    }
    CHECK(device_bytes_in_use(Device::CUDA) == bytes_after_first);  // replays allocate nothing
    CHECK(b.recorded_steps() == 20);  // really from CUDA graphs (a failed capture falls back)
    CHECK(a.weights() == b.weights());
    Tensor x, t, big, unused;
    test::toy_pair(2, 48, 40, 900, x, t);
    CHECK(a.train_step(x, t) == b.train_step(x, t));
    test::toy_pair(6, 64, 64, 901, big, unused);
    CHECK(a.predict(big).to_vector() == b.predict(big).to_vector());
    test::toy_pair(4, 32, 32, 902, x, t);
    CHECK(a.train_step(x, t) == b.train_step(x, t));
    CHECK(a.weights() == b.weights());
  }
}
