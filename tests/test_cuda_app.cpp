// test_cuda_app.cpp: the `isonet` commands with --device cuda against --device cpu, through the
// app library (apps/cmd_*.h, as tests/test_app_train.cpp and tests/test_app_restore.cpp drive
// them): IsoNet-2 trained for a few steps from the same seed on a small simulated volume (every
// step's loss and the final weights), the same volume restored on both devices, and a restore on
// the GPU with a memory budget that forces tiles against whole slices. Skipped without a GPU.
// (The error for --device cuda without a usable GPU is tested in test_app_device.cpp, a program
// that runs everywhere: CTest reports a program that prints the skip marker as skipped whatever
// its other cases did.)
#include <algorithm>
#include <cmath>
#include <sstream>

#include "apps/cmd_restore.h"
#include "apps/cmd_simulate.h"
#include "apps/cmd_train.h"
#include "apps/restore_memory.h"
#include "nn/model_file.h"
#include "app_test_util.h"
#include "training_tolerance.h"

using namespace isonet;
using namespace isonet::app;

namespace {

// Input: a 48^3 nuclei phantom acquired with S = 4 (12 planes of 48x48); simulated on the CPU so both
// devices see the same file.
std::string simulated_input(const test::TempDir& dir) { return test::simulated_acquisition(dir, 48, 6); }


float value_range(const Volume& v) {
  const auto mm = std::minmax_element(v.data.begin(), v.data.end());
  return *mm.second - *mm.first;
}

}  // namespace

TEST_CASE("cuda app: train --device cuda matches --device cpu from the same seed (losses, validation, weights)") {
  if (!test::gpu_or_skip()) return;
  test::TempDir dir;
  const std::string input = simulated_input(dir);
  TrainOptions o = test::quiet_training(input, "gaussian:1,3", "");
  o.steps = 6;
  o.batch = 4;
  o.patch = 16;
  o.patches = 32;
  o.seed = 11;
  o.validation = 0.25;  // 8 pairs scored after steps 3 and 6 (inference interleaved with training)
  o.validate_every = 3;
  TrainOptions oc = o, og = o;
  oc.device = "cpu";
  oc.out = dir.file("cpu.safetensors");
  og.device = "cuda";
  og.out = dir.file("cuda.safetensors");
  const TrainResult c = run_train(oc);
  const TrainResult g = run_train(og);

  // Patch origins and normalization come from the raw volume on the host: identical. The
  // inputs' blur runs on the device (FFTW vs cuFFT), so they differ by transform rounding (~1e-7
  // of the plane's scale), below the networks' own CPU/GPU differences.
  CHECK(g.pairs == c.pairs);
  CHECK(g.model.metadata.normalization.low_value == c.model.metadata.normalization.low_value);
  CHECK(g.model.metadata.normalization.high_value == c.model.metadata.normalization.high_value);
  REQUIRE(c.losses.size() == 6);
  REQUIRE(g.losses.size() == 6);
  // The bounds of CPU vs CUDA direct sums (tests/training_tolerance.h explains and measured them:
  // losses within ~1e-5 and weight rms ~4e-7 over 20 steps). Six Adam steps of lr 5e-4 move the
  // weights by rms 1.4e-3 (measured on the CPU): far above the allowed difference, so a GPU run
  // that did not train would fail the last check (moved by more than 1e-4).
  for (size_t s = 0; s < 6; ++s) {
    INFO("step " << s + 1 << ": cpu loss " << c.losses[s] << ", cuda loss " << g.losses[s]);
    test::check_step_loss(c.losses[s], g.losses[s], test::kReorderTolerance);
  }
  REQUIRE(c.validation.size() == 2);
  REQUIRE(g.validation.size() == 2);
  for (size_t k = 0; k < 2; ++k) {
    INFO("validation " << k << ": cpu " << c.validation[k].psnr << " dB, cuda " << g.validation[k].psnr << " dB");
    CHECK(g.validation[k].step == c.validation[k].step);
    test::check_step_loss(-c.validation[k].psnr, -g.validation[k].psnr, test::kReorderTolerance);
  }
  test::check_final_weights(c.model.weights, g.model.weights,
                            Model::create(Architecture::IsoNet2, o.seed, o.dropout).weights, o.steps, o.lr, 1e-4,
                            test::kReorderTolerance);

  // The model file written from the GPU run holds what the run returned.
  const Model saved = load_model(og.out);
  CHECK(saved.steps == 6);
  CHECK(saved.weights == g.model.weights);
}

TEST_CASE("cuda app: restore --device cuda matches --device cpu") {
  if (!test::gpu_or_skip()) return;
  test::TempDir dir;
  const std::string input = simulated_input(dir);
  // A freshly initialized model: restoring does not depend on training (test_app_restore.cpp).
  Model m = Model::create(Architecture::IsoNet2, 7);
  m.metadata.subsampling = 4.0;
  save_model(dir.file("m.safetensors"), m);
  RestoreOptions o;
  o.model = dir.file("m.safetensors");
  o.input = input;
  o.quiet = true;
  RestoreOptions oc = o, og = o;
  oc.device = "cpu";
  oc.output = dir.file("cpu.tif");
  og.device = "cuda";
  og.output = dir.file("cuda.tif");
  const Volume rc = run_restore(oc);
  const Volume rg = run_restore(og);
  REQUIRE(rg.nz == rc.nz);
  REQUIRE(rg.size() == rc.size());
  CHECK(rg.nz == 48);
  // Normalization and upsampling run on the host for both; the network agrees to 1e-5 absolute
  // + 1e-4 relative in normalized units (test_cuda_model_parity.cpp, inference), and the output
  // is the mean of two predictions scaled back by the percentile range (at most the value
  // range): 1e-4 of the value range and 1e-4 relative.
  const float atol = 1e-4f * value_range(rc);
  CHECK_CLOSE_ARRAYS("restore cuda vs cpu", rc.data.data(), rg.data.data(), rc.size(), atol, 1e-4);
}

TEST_CASE("cuda app: restore on the GPU in tiles (small --max-memory) equals whole slices") {
  if (!test::gpu_or_skip()) return;
  // The geometry of test_app_restore.cpp: XZ slices [56, 160], wide enough for tiles with a
  // 48-pixel margin; a budget of what strips with 28-column cores hold on the GPU (its own
  // workspace sizes, restore_memory.h) admits no whole padded slice, so the slices go in strips.
  const double S = 8.0;
  Volume in(7, 3, 160);
  const auto noise = test::random_vector(in.size(), 2, 0.f, 0.2f);
  for (int z = 0; z < in.nz; ++z)
    for (int y = 0; y < in.ny; ++y)
      for (int x = 0; x < in.nx; ++x)
        in.at(z, y, x) = 100.f + 50.f * float(std::sin(0.3 * x + 0.7 * z) * std::cos(0.2 * y)) +
                         100.f * noise[in.index(z, y, x)];
  in.voxel = VoxelSize{S * 0.1, 0.1, 0.1, "um"};
  Model model = Model::create(Architecture::IsoNet2, 7);
  model.metadata.subsampling = S;

  std::ostringstream log;
  RestoreSettings whole;
  whole.device = Device::CUDA;
  RestoreStats s_whole, s_tiled;
  const Volume ref = restore_volume(model, in, whole, log, &s_whole);
  CHECK(s_whole.tile_h == 0);
  InferenceMemory mem(Architecture::IsoNet2, Device::CUDA);
  RestoreSettings tiled = whole;
  tiled.max_memory_bytes = plan_memory(mem, {}, {1, 56, 28}, 3, 56, 160, 48).total();
  const Volume rt = restore_volume(model, in, tiled, log, &s_tiled);
  INFO(log.str());
  CHECK(s_tiled.tile_h > 0);
  CHECK(s_tiled.tile_w > 0);
  CHECK(s_tiled.tile_w < 160);
  CHECK(s_tiled.memory_bytes <= tiled.max_memory_bytes);
  REQUIRE(rt.size() == ref.size());
  // Same device and kernels; another image width per call can change the conv kernels' split of
  // the channel sums (split-K), hence the rounding: test_app_restore.cpp's tolerance, 1e-5 of the
  // value range (a margin too small for the receptive field differs by more than 1e-3 of it).
  const float atol = 1e-5f * value_range(ref);
  CHECK_CLOSE_ARRAYS("tiled vs whole slices on the GPU", ref.data.data(), rt.data.data(), ref.size(), atol, 1e-5);
}
