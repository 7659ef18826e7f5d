// test_app_train.cpp: `isonet train`: checkpoint + resume reproduces an uninterrupted run (same
// seed: same pairs, batches, dropout masks and Adam state), resuming with other settings is
// refused, --record-steps trains the same model bit for bit, and the errors a user can act on
// (missing file, no subsampling factor, factor < 1, NaN input) come with their message and leave
// no model file behind. Small volumes and a few steps: this tests the bookkeeping, not the
// learning (test_app_end_to_end does that).
#include <algorithm>
#include <cmath>
#include <functional>

#include "apps/cmd_simulate.h"
#include "apps/cmd_train.h"
#include "apps/loss_plot.h"
#include "imaging/png_image.h"
#include "imaging/tiff.h"
#include "kernels/error.h"
#include "nn/model_file.h"
#include "app_test_util.h"

using namespace isonet;
using namespace isonet::app;

namespace {

using test::contains;
using test::error_of;

// Input: a 40^3 nuclei phantom acquired with S = 4 (10 planes of 40x40).
std::string simulated_input(const test::TempDir& dir) { return test::simulated_acquisition(dir, 40, 5); }

TrainOptions small_training(const test::TempDir& dir, const std::string& input, const std::string& out) {
  TrainOptions o = test::quiet_training(input, "gaussian:1,3", dir.file(out));
  o.steps = 6;
  o.batch = 3;
  o.patch = 16;
  o.patches = 24;
  o.seed = 11;
  return o;
}

}  // namespace

TEST_CASE("train: checkpoint + resume gives the uninterrupted run") {
  test::TempDir dir;
  const std::string input = simulated_input(dir);

  TrainOptions full = small_training(dir, input, "full.safetensors");
  full.loss_plot = dir.file("loss.png");
  const TrainResult a = run_train(full);
  CHECK(a.model.steps == 6);
  CHECK(a.losses.size() == 6);
  CHECK(a.factor.message == "subsampling factor S = 0.4000/0.1000 = 4.000000 (from TIFF voxel size)");
  const Gray8 plot = read_png_gray(full.loss_plot);
  CHECK(plot.width == 640);
  CHECK(plot.height == 360);

  // Interrupted after 3 steps (checkpoint every 2 steps: written at 2 and at the end, 3) ...
  TrainOptions part = small_training(dir, input, "part.safetensors");
  part.steps = 3;
  part.checkpoint_every = 2;
  const TrainResult b1 = run_train(part);
  CHECK(b1.model.steps == 3);
  CHECK(load_model(part.out).steps == 3);
  // ... and resumed up to 6.
  TrainOptions resume = part;
  resume.steps = 6;
  resume.resume = true;
  const TrainResult b2 = run_train(resume);
  CHECK(b2.steps_this_run == 3);
  CHECK(b2.model.steps == 6);
  CHECK(b2.model.adam.step == 6);
  REQUIRE(b2.losses.size() == 6);

  // Same pairs, batches, dropout masks and Adam state: the same arithmetic in the same order,
  // so bit-identical on the CPU (no tolerance needed; a GPU run is equally deterministic).
  const Model saved = load_model(resume.out);
  REQUIRE(saved.weights.size() == a.model.weights.size());
  CHECK_CLOSE_ARRAYS("weights after resume", a.model.weights.data(), saved.weights.data(), saved.weights.size(), 0.0,
                     0.0);
  CHECK_CLOSE_ARRAYS("loss history", a.losses.data(), b2.losses.data(), 6, 0.0, 0.0);
  CHECK(saved.metadata.subsampling == doctest::Approx(4.0).epsilon(1e-12));
  CHECK(saved.metadata.psf_mode == "split");
  CHECK(saved.metadata.psf == "gaussian sigma_xy=1 px sigma_z=3 px");

  // Resuming a finished run does nothing.
  const TrainResult again = run_train(resume);
  CHECK(again.steps_this_run == 0);

  // Other settings are refused, naming what differs.
  TrainOptions other = resume;
  other.steps = 8;
  other.batch = 4;
  other.lr = 1e-3;
  const std::string msg = error_of([&] { run_train(other); });
  CHECK(contains(msg, "settings differ"));
  CHECK(contains(msg, "batch: checkpoint 3, now 4"));
  CHECK(contains(msg, "lr:"));
  CHECK(load_model(resume.out).steps == 6);  // the checkpoint is untouched

  TrainOptions nothing = small_training(dir, input, "absent.safetensors");
  nothing.resume = true;
  CHECK(contains(error_of([&] { run_train(nothing); }), "cannot be opened"));
}

TEST_CASE("train: --record-steps trains the same model bit for bit") {
  test::TempDir dir;
  const std::string input = simulated_input(dir);
  const TrainResult plain = run_train(small_training(dir, input, "plain.safetensors"));
  TrainOptions o = small_training(dir, input, "recorded.safetensors");
  o.record_steps = true;
  const TrainResult recorded = run_train(o);
  CHECK(recorded.losses == plain.losses);
  CHECK(recorded.model.weights == plain.model.weights);
}

TEST_CASE("train: --validation scores held-out pairs without changing training, --best keeps the best weights") {
  test::TempDir dir;
  const std::string input = simulated_input(dir);
  TrainOptions o = small_training(dir, input, "validated.safetensors");
  o.validation = 0.25;
  o.validate_every = 2;
  o.best = dir.file("best.safetensors");
  const TrainResult a = run_train(o);
  CHECK(a.validation_pairs == 6);  // round(0.25 * 24)
  CHECK(a.pairs == 18);
  REQUIRE(a.validation.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    CHECK(a.validation[i].step == long(2 * (i + 1)));
    CHECK(std::isfinite(a.validation[i].psnr));
  }
  // The history is in the model file, so a resumed run and the user both see it.
  const std::string extra = load_model(o.out).metadata.extra_json;
  CHECK(contains(extra, "\"validation_history\""));

  // Scoring in between does not touch training: validating only at the end gives the same weights
  // and the same final score, bit for bit.
  TrainOptions rare = small_training(dir, input, "rare.safetensors");
  rare.validation = 0.25;
  rare.validate_every = 1000;
  const TrainResult b = run_train(rare);
  REQUIRE(b.validation.size() == 1);
  CHECK(b.validation[0].step == 6);
  CHECK(b.validation[0].psnr == a.validation[2].psnr);
  CHECK(b.model.weights == a.model.weights);
  CHECK(b.losses == a.losses);

  // --best holds the weights of the best-scoring step: those of a run stopped there.
  const auto best = *std::max_element(a.validation.begin(), a.validation.end(),
                                      [](const auto& x, const auto& y) { return x.psnr < y.psnr; });
  const Model best_model = load_model(o.best);
  CHECK(best_model.steps == best.step);
  TrainOptions stopped = small_training(dir, input, "stopped.safetensors");
  stopped.validation = 0.25;
  stopped.steps = best.step;
  CHECK(run_train(stopped).model.weights == best_model.weights);

  // Resumed: the same scores at the uninterrupted run's steps (plus one where the first part ended).
  TrainOptions part = o;
  part.out = dir.file("part.safetensors");
  part.best = dir.file("part_best.safetensors");
  part.steps = 3;
  run_train(part);
  part.steps = 6;
  part.resume = true;
  const TrainResult resumed = run_train(part);
  REQUIRE(resumed.validation.size() == 4);  // steps 2, 3, 4, 6
  CHECK(resumed.validation[0].psnr == a.validation[0].psnr);
  CHECK(resumed.validation[2].psnr == a.validation[1].psnr);
  CHECK(resumed.validation[3].psnr == a.validation[2].psnr);
  CHECK(resumed.model.weights == a.model.weights);
  CHECK(load_model(part.best).steps == best_model.steps);
  // Resuming without --validation is refused: the batches would come from other pairs.
  TrainOptions without = part;
  without.validation = 0;
  without.best.clear();
  without.steps = 8;
  CHECK(contains(error_of([&] { run_train(without); }), "validation: checkpoint 0.25, now (none)"));
}

TEST_CASE("train: several inputs train one model (pairs shared by size, interleaved), resume checks them") {
  test::TempDir dir;
  // Two acquisitions of the same sampling (S = 4, 0.1 um pixels), different phantoms; the second
  // half as deep (fewer voxels: fewer pairs).
  const std::string a = test::simulated_acquisition(dir, 40, 5, 1, "a");
  const std::string b = test::simulated_acquisition(dir, 40, 5, 2, "b");
  Volume half = read_tiff(b);
  half.nz = 5;
  half.data.resize(size_t(half.nz) * half.ny * half.nx);
  const std::string c = dir.file("c_aniso.tif");
  write_tiff(c, half);

  TrainOptions o = small_training(dir, a, "two.safetensors");
  o.inputs = {a, c};
  o.patches = 30;
  const TrainResult r = run_train(o);
  CHECK(r.model.steps == 6);
  CHECK(r.input_pairs == std::vector<int>{20, 10});  // shared by voxels: 10 planes of 40x40 against 5
  CHECK(r.pairs == 30);
  CHECK(contains(load_model(o.out).metadata.extra_json, "more_inputs_normalization"));

  // Resumed with the same inputs: the uninterrupted run bit for bit; with another second input: refused.
  TrainOptions part = o;
  part.out = dir.file("part.safetensors");
  part.quiet = true;
  part.steps = 3;
  run_train(part);
  part.steps = 6;
  part.resume = true;
  CHECK(run_train(part).model.weights == r.model.weights);
  TrainOptions other = part;
  other.inputs = {a, b};
  other.steps = 8;
  CHECK(contains(error_of([&] { run_train(other); }), "more_inputs_normalization"));

  // Inputs of another factor S or pixel size are refused, naming both.
  Volume coarse = read_tiff(a);
  coarse.voxel.z = 0.8;  // S = 8
  write_tiff(dir.file("coarse.tif"), coarse);
  TrainOptions mixed = small_training(dir, a, "mixed.safetensors");
  mixed.inputs = {a, dir.file("coarse.tif")};
  const std::string s_msg = error_of([&] { run_train(mixed); });
  CHECK(contains(s_msg, "the inputs differ in their subsampling factor"));
  CHECK(contains(s_msg, "S = 8.000000"));
  Volume finer = read_tiff(a);
  finer.voxel.x = finer.voxel.y = 0.05;
  finer.voxel.z = 0.2;  // S = 4 still
  write_tiff(dir.file("finer.tif"), finer);
  mixed.inputs = {a, dir.file("finer.tif")};
  CHECK(contains(error_of([&] { run_train(mixed); }), "the inputs differ in their lateral pixel size"));
  CHECK(!std::ifstream(mixed.out).good());
}

TEST_CASE("train: errors a user can act on, and no model file written") {
  test::TempDir dir;
  Volume v(6, 24, 24, 1.f);
  for (size_t i = 0; i < v.size(); ++i) v.data[i] = float(i % 7);
  v.voxel = VoxelSize{1, 1, 1, "px"};
  write_tiff(dir.file("plain.tif"), v);  // no voxel metadata
  TrainOptions o = small_training(dir, dir.file("plain.tif"), "m.safetensors");
  o.patch = 12;

  const std::string no_factor = error_of([&] { run_train(o); });
  CHECK(contains(no_factor, "states no z spacing"));
  CHECK(contains(no_factor, "--subsample"));

  TrainOptions low = o;
  low.subsample = 0.5;
  CHECK(contains(error_of([&] { run_train(low); }), "below 1"));

  TrainOptions missing = o;
  missing.inputs = {dir.file("nope.tif")};
  CHECK(contains(error_of([&] { run_train(missing); }), "input file"));

  Volume nan = v;
  nan.data[100] = INFINITY;
  write_tiff(dir.file("inf.tif"), nan);
  TrainOptions with_inf = o;
  with_inf.inputs = {dir.file("inf.tif")};
  with_inf.subsample = 2;
  CHECK(contains(error_of([&] { run_train(with_inf); }), "non-finite"));

  TrainOptions bad_psf = o;
  bad_psf.subsample = 2;
  bad_psf.psf = "gaussian:1";
  CHECK(contains(error_of([&] { run_train(bad_psf); }), "accepted forms"));

  // --math is parsed before any work (the run_train path of `isonet train --math bogus`; the
  // program's own option check is in test_app_commands).
  TrainOptions bad_math = o;
  bad_math.subsample = 2;
  bad_math.math = "bogus";
  const std::string math_msg = error_of([&] { run_train(bad_math); });
  CHECK(contains(math_msg, "train: --math"));
  CHECK(contains(math_msg, "'bogus'"));
  CHECK(contains(math_msg, "fp32, tf32"));

  Volume flat(6, 24, 24, 5.f);  // constant: normalizes to nothing, the loss is undefined
  flat.voxel = v.voxel;
  write_tiff(dir.file("flat.tif"), flat);
  TrainOptions constant = o;
  constant.inputs = {dir.file("flat.tif")};
  constant.subsample = 2;
  const std::string flat_msg = error_of([&] { run_train(constant); });
  CHECK(contains(flat_msg, "constant"));
  CHECK(contains(flat_msg, "no structure to learn"));

  TrainOptions big_patch = o;
  big_patch.subsample = 2;
  big_patch.patch = 32;
  CHECK(contains(error_of([&] { run_train(big_patch); }), "larger than the lateral plane"));

  // Validation settings that cannot work, each refused naming the problem.
  auto refusal = [&](const std::function<void(TrainOptions&)>& change) {
    TrainOptions t = o;
    t.subsample = 2;
    change(t);
    return error_of([&] { run_train(t); });
  };
  CHECK(contains(refusal([&](TrainOptions& t) { t.best = dir.file("best.safetensors"); }),
                 "--best needs --validation"));
  CHECK(contains(refusal([](TrainOptions& t) { t.validation = 1.0; }), "--validation must be a fraction in [0, 1)"));
  CHECK(contains(refusal([](TrainOptions& t) {
                   t.validation = 0.2;
                   t.best = t.out;
                 }),
                 "--best must name another file"));
  CHECK(contains(refusal([](TrainOptions& t) {
                   t.patches = 1;
                   t.validation = 0.1;
                 }),
                 "leaves no training pair of 1"));

  auto names = dir.entries();
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"flat.tif", "inf.tif", "plain.tif"});
}

TEST_CASE("loss plot: the curve is drawn inside the frame") {
  std::vector<float> losses;
  for (int i = 0; i < 200; ++i) losses.push_back(-10.f - 10.f * float(1 - std::exp(-i / 40.0)));
  const Gray8 img = render_loss_plot(losses, 1, 320, 200);
  REQUIRE(img.pixels.size() == size_t(320) * 200);
  // The smoothed curve is black: some black pixels right of the axis, in the upper part at the
  // end (PSNR rises) and the lower part at the start.
  auto dark = [&](int x0, int x1, int y0, int y1) {
    int n = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) n += img.pixels[size_t(y) * 320 + x] < 60;
    return n;
  };
  CHECK(dark(300, 310, 8, 60) > 0);
  CHECK(dark(300, 310, 120, 178) == 0);
  CHECK(dark(50, 60, 120, 180) > 0);
  CHECK_THROWS_AS(render_loss_plot({NAN}, 1), Error);

  // A validation score above every training PSNR widens the range and is drawn at its step: a
  // hollow square at the top of the plot at step 100 (x ~ 48 + 99/199 * 262), nothing there without it.
  const Gray8 with = render_loss_plot(losses, 1, 320, 200, {{100, 25.0}});
  auto dark_in = [&](const Gray8& g, int x0, int x1, int y0, int y1) {
    int n = 0;
    for (int y = y0; y < y1; ++y)
      for (int x = x0; x < x1; ++x) n += g.pixels[size_t(y) * 320 + x] < 60;
    return n;
  };
  CHECK(dark_in(with, 174, 185, 8, 24) >= 8);
  CHECK(dark_in(img, 174, 185, 8, 24) == 0);
}
