// cmd_train.cpp: `isonet train` (see cmd_train.h).
#include "apps/cmd_train.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "apps/common.h"
#include "apps/loss_plot.h"
#include "apps/progress.h"
#include "apps/psf_spec.h"
#include "imaging/psf_training.h"
#include "imaging/training_pairs.h"
#include "kernels/device.h"
#include "kernels/error.h"
#include "kernels/rng.h"
#include "nn/model_file.h"
#include "nn/tensor.h"
#include "nn/trainer.h"

namespace isonet::app {
namespace {

using nlohmann::json;

// Pair indices for global draw positions p = (step - 1) * batch + i: epoch p / n uses its own
// seeded permutation of the n pairs (Fisher-Yates keyed on seed and epoch), so every pair is
// drawn once per epoch and a resumed run draws exactly what an uninterrupted one would.
class BatchSampler {
 public:
  BatchSampler(int n, uint64_t seed) : n_(n), seed_(seed) {}
  int operator()(long long position) {
    const long long epoch = position / n_;
    if (epoch != epoch_) {
      perm_.resize(size_t(n_));
      for (int i = 0; i < n_; ++i) perm_[size_t(i)] = i;
      for (int i = n_ - 1; i > 0; --i) {
        const uint32_t r = counter_random_u32(seed_ ^ 0xBA7C4ull, uint64_t(epoch), uint64_t(i));
        std::swap(perm_[size_t(i)], perm_[size_t(r % uint32_t(i + 1))]);
      }
      epoch_ = epoch;
    }
    return perm_[size_t(position % n_)];
  }

 private:
  int n_;
  uint64_t seed_;
  long long epoch_ = -1;
  std::vector<int> perm_;
};

// The settings a resumed run must share with its checkpoint.
json train_settings(const TrainOptions& opt, double factor, int patches, const NormalizeParams& norm) {
  return json{{"psf", opt.psf},
              {"psf_units", opt.psf_units},
              {"psf_size", opt.psf_size},
              {"psf_voxel", opt.psf_voxel},
              {"psf_mode", opt.psf_mode},
              {"model", opt.model},
              {"interp", opt.interp},
              {"batch", opt.batch},
              {"patch", opt.patch},
              {"patches", patches},
              {"lr", opt.lr},
              {"dropout", opt.dropout},
              {"seed", opt.seed},
              {"subsampling", factor},
              {"normalization_low_value", norm.p_lo},
              {"normalization_high_value", norm.p_hi}};
}

std::string extra_json(const json& settings, const std::string& input, const std::vector<float>& losses) {
  json j;
  j["interp"] = settings["interp"];
  j["train"] = settings;
  j["train"]["input"] = input;
  json hist = json::array();
  for (float l : losses) {
    if (std::isfinite(l)) hist.push_back(l);
    else hist.push_back(nullptr);
  }
  j["loss_history"] = hist;
  return j.dump();
}

// Compares the checkpoint's settings with this run's; throws listing every difference.
void check_resume(const Model& ckpt, const json& now, const std::string& path, std::vector<float>& losses) {
  json extra;
  try {
    extra = json::parse(ckpt.metadata.extra_json);
  } catch (const std::exception&) {
    fail("resume: '", path, "' has no readable training settings (not written by isonet train?)");
  }
  ISONET_CHECK(extra.contains("train") && extra["train"].is_object(), "resume: '", path,
               "' has no training settings (not written by isonet train?)");
  const json& was = extra["train"];
  std::ostringstream diffs;
  for (auto it = now.begin(); it != now.end(); ++it) {
    if (!was.contains(it.key()) || was[it.key()] != it.value())
      diffs << "\n  " << it.key() << ": checkpoint " << (was.contains(it.key()) ? was[it.key()].dump() : "(none)")
            << ", now " << it.value().dump();
  }
  const std::string d = diffs.str();
  ISONET_CHECK(d.empty(), "resume: the settings differ from the checkpoint '", path, "' (resume with the same ",
               "input, PSF and training options, or train anew without --resume):", d);
  losses.clear();
  if (extra.contains("loss_history") && extra["loss_history"].is_array())
    for (const auto& v : extra["loss_history"]) losses.push_back(v.is_number() ? v.get<float>() : NAN);
  ISONET_CHECK(long(losses.size()) == ckpt.steps, "resume: '", path, "' records ", losses.size(),
               " losses for ", ckpt.steps, " steps (damaged checkpoint)");
}

void save_checkpoint(const std::string& path, Trainer& trainer, const json& settings, const std::string& input,
                     const std::vector<float>& losses, Model* out_model) {
  Model m = trainer.export_model();
  m.metadata.extra_json = extra_json(settings, input, losses);
  save_model(path, m, /*with_optimizer=*/true);
  if (out_model) *out_model = std::move(m);
}

}  // namespace

int default_patches(int patch) {
  // 4096 pairs, at most 256 MiB of them (inputs and targets): 4096 up to 64x64, fewer beyond.
  // Independent of --steps, so that a run resumed with more steps makes the same pairs.
  return int(std::max<long>(1, std::min<long>(4096, (long(1) << 25) / (long(patch) * patch))));
}

TrainResult run_train(const TrainOptions& opt) {
  std::ostream& out = report_stream(opt.quiet);
  ISONET_CHECK(!opt.out.empty(), "train: --out MODEL is required");
  ISONET_CHECK(!opt.psf.empty(), "train: --psf is required; accepted forms:\n", psf_spec_forms());
  ISONET_CHECK(opt.steps >= 1, "train: --steps must be >= 1, got ", opt.steps);
  ISONET_CHECK(opt.batch >= 1, "train: --batch must be >= 1, got ", opt.batch);
  ISONET_CHECK(opt.patch >= 4 && opt.patch % 4 == 0, "train: --patch must be a multiple of 4 (two 2x poolings), got ",
               opt.patch);
  ISONET_CHECK(opt.lr > 0 && std::isfinite(opt.lr), "train: --lr must be > 0, got ", opt.lr);
  ISONET_CHECK(opt.checkpoint_every >= 0, "train: --checkpoint-every must be >= 0");
  ISONET_CHECK(opt.psf_mode == "split" || opt.psf_mode == "full", "train: --psf-mode must be split or full, got '",
               opt.psf_mode, "'");
  const Architecture arch = parse_architecture(opt.model);
  const ConvSettings conv{parse_conv_algo(opt.conv, "train: --conv"), parse_conv_math(opt.math, "train: --math")};
  const Interp interp = parse_interp(opt.interp.c_str());
  const PsfSpec spec = parse_psf_spec(opt.psf);
  std::vector<double> voxel_override;
  if (!opt.voxel.empty()) {
    voxel_override = parse_number_list(opt.voxel, 3, "--voxel", "Z,Y,X voxel size in um, e.g. 0.4,0.1,0.1");
    for (double v : voxel_override) ISONET_CHECK(v > 0, "--voxel: sizes must be > 0, got ", opt.voxel);
  }
  if (opt.resume) require_file(opt.out, "checkpoint to --resume from (--out)");

  // Data and the subsampling factor, stated exactly.
  TiffInfo info;
  Volume data = read_volume(opt.input, "input", &info);
  if (!voxel_override.empty()) data.voxel = VoxelSize{voxel_override[0], voxel_override[1], voxel_override[2], "um"};
  const SubsamplingFactor factor = determine_subsampling(info, opt.subsample, voxel_override, opt.input);
  out << factor.message << "\n";
  if (!factor.warning.empty()) out << factor.warning << "\n";
  const double S = factor.factor;
  out << "input: " << opt.input << " " << data.shape_str() << ", voxel " << describe_voxel(data.voxel) << "\n";
  ISONET_CHECK(opt.patch <= data.ny && opt.patch <= data.nx, "train: --patch ", opt.patch,
               " is larger than the lateral plane ", data.ny, "x", data.nx, ": use a --patch <= ",
               (std::min(data.ny, data.nx) / 4) * 4, " (a multiple of 4)");

  // The PSF on the isotropic grid of the lateral pixel size, and its training kernel.
  const double dx = data.voxel.x;
  const VoxelSize iso{dx, dx, dx, data.voxel.unit};
  PsfBuildContext ctx;
  ctx.units = parse_psf_units(opt.psf_units);
  ctx.size = opt.psf_size;
  if (!opt.psf_voxel.empty())
    ctx.file_voxel = parse_number_list(opt.psf_voxel, 3, "--psf-voxel", "Z,Y,X voxel size of the bead file");
  ctx.data_voxel_known = info.has_z_spacing || info.has_xy_size || !voxel_override.empty();
  ctx.data_acquired_voxel = VoxelSize{S * dx, dx, dx, data.voxel.unit};
  const Volume psf = build_psf(spec, iso, ctx, out);
  TrainingPsfOptions topt;
  topt.plane = AxialPlane::XZ;
  topt.z_axis = LateralZAxis::Y;  // rows play z: the orientation of training_pairs.h and restore
  const TrainingPsfs kernels = training_psfs(psf, topt);
  const Volume& kernel = opt.psf_mode == "split" ? kernels.split : kernels.rotated;
  out << "PSF: " << describe_psf(spec, ctx.units) << " on grid " << psf.shape_str() << "; training kernel "
      << (opt.psf_mode == "split" ? "h_split" : "h_rot (full)") << " " << kernel.shape_str() << " (rows = z)\n";

  // Training pairs.
  const Device device = select_device(opt.device);
  note_cpu_conv_math(out, "train", conv.math, device);
  TrainingPairOptions popt;
  popt.factor = S;
  popt.interp = interp;
  popt.kernel_z_axis = LateralZAxis::Y;
  popt.both_orientations = true;
  popt.patch_size = opt.patch;
  popt.patch_multiple = 4;
  popt.n_patches = opt.patches > 0 ? opt.patches : default_patches(opt.patch);
  popt.seed = opt.seed;
  popt.device = device;
  TrainingPairs pairs;
  with_oom_hint([&] { pairs = make_training_pairs(data, kernel, popt); }, "train with --device cpu");
  ISONET_CHECK(pairs.n >= 1, "train: no training patch passed the foreground test in '", opt.input,
               "' (", pairs.candidates, " candidates, all background): is the volume empty or the --patch too large?");
  // Equal percentiles: (nearly) every voxel has one value, the normalized targets are ~0 and the
  // PSNR loss (which divides by the target's maximum) has nothing to measure.
  ISONET_CHECK(pairs.norm.p_hi > pairs.norm.p_lo, "train: '", opt.input, "' is (nearly) constant: its percentiles p",
               pairs.norm.low_percent, " and p", pairs.norm.high_percent, " are both ", pairs.norm.p_lo,
               ", so there is no structure to learn");
  out << "training pairs: " << pairs.n << " patches of " << opt.patch << "x" << opt.patch << " (" << pairs.requested
      << " requested, " << pairs.rejected_background << " background candidates rejected), normalization p"
      << pairs.norm.low_percent << " = " << pairs.norm.p_lo << ", p" << pairs.norm.high_percent << " = "
      << pairs.norm.p_hi << "\n";
  if (pairs.shortfall() > 0)
    out << "warning: only " << pairs.n << " of " << pairs.requested << " patches found enough foreground\n";
  data = Volume();  // the pairs are all that is needed from here on

  // The model: new, or the checkpoint to resume.
  const json settings = train_settings(opt, S, popt.n_patches, pairs.norm);
  TrainResult result;
  result.factor = factor;
  result.pairs = pairs.n;
  Model model;
  if (opt.resume) {
    model = load_model(opt.out);
    check_resume(model, settings, opt.out, result.losses);
    out << "resume: " << opt.out << " at step " << model.steps << " of " << opt.steps << "\n";
  } else {
    model = Model::create(arch, opt.seed, opt.dropout);
  }
  model.metadata.normalization =
      Normalization{pairs.norm.low_percent, pairs.norm.high_percent, double(pairs.norm.p_lo), double(pairs.norm.p_hi)};
  model.metadata.psf = describe_psf(spec, ctx.units);
  model.metadata.psf_mode = opt.psf_mode;
  model.metadata.subsampling = S;
  model.metadata.extra_json = extra_json(settings, opt.input, result.losses);

  if (model.steps >= opt.steps) {
    out << "train: the checkpoint already has " << model.steps << " >= --steps " << opt.steps
        << " steps; nothing to do\n";
    result.model = std::move(model);
    return result;
  }

  TrainerOptions tro;
  tro.adam.lr = float(opt.lr);
  tro.dropout_seed = opt.seed;
  tro.conv = conv;
  tro.record_steps = opt.record_steps;
  const int B = opt.batch, P = opt.patch;
  const size_t patch_floats = size_t(P) * P;
  const std::string oom_hint = "lower --batch or --patch, or train with --device cpu";
  with_oom_hint(
      [&] {
        Trainer trainer(model, device, tro);
        out << "train: " << architecture_name(arch) << " (" << trainer.layout().parameter_count() << " parameters) on "
            << device_name(device) << ", steps " << model.steps + 1 << ".." << opt.steps << ", batch " << B
            << ", lr " << opt.lr << ", conv " << conv_algo_name(conv.algo) << ", math " << conv_math_name(conv.math)
            << (opt.record_steps ? ", recorded steps" : "") << "\n";
        out.flush();
        Tensor inputs(Shape{B, 1, P, P}, Device::CPU), targets(Shape{B, 1, P, P}, Device::CPU);
        BatchSampler sampler(pairs.n, opt.seed);
        TrainingProgress progress(model.steps, opt.steps, B, opt.progress);
        const auto t0 = std::chrono::steady_clock::now();
        for (long step = model.steps + 1; step <= opt.steps; ++step) {
          for (int i = 0; i < B; ++i) {
            const int k = sampler((long long)(step - 1) * B + i);
            std::memcpy(inputs.data() + size_t(i) * patch_floats, pairs.inputs.data() + size_t(k) * patch_floats,
                        patch_floats * sizeof(float));
            std::memcpy(targets.data() + size_t(i) * patch_floats, pairs.targets.data() + size_t(k) * patch_floats,
                        patch_floats * sizeof(float));
          }
          const float loss = trainer.train_step(inputs, targets);
          ISONET_CHECK(std::isfinite(loss), "train: the loss became ", loss, " at step ", step,
                       " (training diverged): try a lower --lr; the last checkpoint in '", opt.out, "' is kept");
          result.losses.push_back(loss);
          ++result.steps_this_run;
          progress.update(step, loss);
          if (opt.checkpoint_every > 0 && step % opt.checkpoint_every == 0 && step < opt.steps)
            save_checkpoint(opt.out, trainer, settings, opt.input, result.losses, nullptr);
        }
        progress.finish();
        result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        save_checkpoint(opt.out, trainer, settings, opt.input, result.losses, &result.model);
      },
      oom_hint);
  out << "train: wrote " << opt.out << " (step " << result.model.steps << ", " << result.steps_this_run
      << " steps in " << TrainingProgress::format_duration(result.seconds) << ")\n";
  if (!opt.loss_plot.empty()) {
    write_loss_plot(opt.loss_plot, result.losses, 1);
    out << "train: wrote the loss curve " << opt.loss_plot << "\n";
  }
  return result;
}

}  // namespace isonet::app
