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
#include "kernels/psnr_loss.h"
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
json train_settings(const TrainOptions& opt, double factor, int patches, const std::vector<NormalizeParams>& norms) {
  const NormalizeParams& norm = norms.front();
  json j{{"psf", opt.psf},
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
  // Only when used, so that checkpoints written before these options existed still resume.
  if (opt.validation > 0) j["validation"] = opt.validation;
  if (opt.select.channel >= 0) j["channel"] = opt.select.channel;
  if (opt.select.frame >= 0) j["frame"] = opt.select.frame;
  if (norms.size() > 1) {  // further inputs: their normalization values, so a resume uses the same data
    json more = json::array();
    for (size_t i = 1; i < norms.size(); ++i) more.push_back(json::array({norms[i].p_lo, norms[i].p_hi}));
    j["more_inputs_normalization"] = more;
  }
  return j;
}

using Validations = std::vector<ValidationPoint>;

std::string extra_json(const json& settings, const std::string& input, const std::vector<float>& losses,
                       const Validations& validation) {
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
  if (settings.contains("validation")) {
    json v = json::array();
    for (const auto& e : validation) v.push_back(json::array({e.step, e.psnr}));
    j["validation_history"] = v;  // [step, mean PSNR in dB] pairs
  }
  return j.dump();
}

// Compares the checkpoint's settings with this run's; throws listing every difference.
void check_resume(const Model& ckpt, const json& now, const std::string& path, std::vector<float>& losses,
                  Validations& validation) {
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
  // A setting the checkpoint has and this run lacks (e.g. --validation; "input" is informative only).
  for (auto it = was.begin(); it != was.end(); ++it)
    if (it.key() != "input" && !now.contains(it.key()))
      diffs << "\n  " << it.key() << ": checkpoint " << it.value().dump() << ", now (none)";
  const std::string d = diffs.str();
  ISONET_CHECK(d.empty(), "resume: the settings differ from the checkpoint '", path, "' (resume with the same ",
               "input, PSF and training options, or train anew without --resume):", d);
  losses.clear();
  if (extra.contains("loss_history") && extra["loss_history"].is_array())
    for (const auto& v : extra["loss_history"]) losses.push_back(v.is_number() ? v.get<float>() : NAN);
  ISONET_CHECK(long(losses.size()) == ckpt.steps, "resume: '", path, "' records ", losses.size(),
               " losses for ", ckpt.steps, " steps (damaged checkpoint)");
  validation.clear();
  if (extra.contains("validation_history") && extra["validation_history"].is_array())
    for (const auto& v : extra["validation_history"]) {
      ISONET_CHECK(v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[1].is_number() &&
                       v[0].get<long>() >= 1 && v[0].get<long>() <= ckpt.steps,
                   "resume: '", path, "' has a damaged validation history entry ", v.dump());
      validation.push_back({v[0].get<long>(), v[1].get<double>()});
    }
}

// The number of pairs --validation holds out: round(F * n), at least 1, leaving at least 1.
int validation_count(double fraction, int pairs) {
  if (fraction <= 0) return 0;
  const int k = std::max(1, int(std::lround(fraction * pairs)));
  ISONET_CHECK(k < pairs, "train: --validation ", fraction, " leaves no training pair of ", pairs,
               " (use a smaller fraction or more --patches)");
  return k;
}

// Mean per-patch PSNR (dB, the training loss's definition, kernels/psnr_loss.h) of the network
// without dropout on pairs [first, first + count), in batches of `batch`.
float validation_psnr(Trainer& trainer, const TrainingPairs& pairs, int first, int count, int batch, int patch) {
  const size_t pf = size_t(patch) * patch;
  std::vector<float> pred(size_t(batch) * pf), psnr(static_cast<size_t>(batch));
  double sum = 0;
  for (int i = first; i < first + count; i += batch) {
    const int n = std::min(batch, first + count - i);
    trainer.predict(pairs.inputs.data() + size_t(i) * pf, pred.data(), n, patch, patch);
    float loss = 0;
    cpu::psnr_loss_forward(PsnrLossShape{n, pf}, pred.data(), pairs.targets.data() + size_t(i) * pf, &loss,
                           psnr.data());
    for (int k = 0; k < n; ++k) sum += psnr[size_t(k)];
  }
  return float(sum / count);
}

// Writes the trainer's model (atomically): with Adam's state for a checkpoint, without for --best.
void save_checkpoint(const std::string& path, Trainer& trainer, const json& settings, const std::string& input,
                     const std::vector<float>& losses, const Validations& validation, Model* out_model,
                     bool with_optimizer = true) {
  Model m = trainer.export_model();
  m.metadata.extra_json = extra_json(settings, input, losses, validation);
  save_model(path, m, with_optimizer);
  if (out_model) *out_model = std::move(m);
}

// What train needs from an input before reading its pixels.
struct InputHeader {
  std::string path;
  TiffInfo info;             // of the selected volume (--channel/--frame)
  SubsamplingFactor factor;  // from --subsample, --voxel or its metadata
};

// Every input's header. They must share the factor S and the lateral pixel size: one PSF grid,
// one set of training pairs and one network serve them all.
std::vector<InputHeader> read_input_headers(const TrainOptions& opt, const std::vector<double>& voxel_override) {
  ISONET_CHECK(!opt.inputs.empty(), "train: --input is required");
  std::vector<InputHeader> headers;
  for (const std::string& path : opt.inputs) {
    require_file(path, "input");
    InputHeader h{path, read_tiff_info(path, opt.select), {}};
    h.factor = determine_subsampling(h.info, opt.subsample, voxel_override, path);
    if (!headers.empty()) {
      const InputHeader& first = headers.front();
      ISONET_CHECK(nearly_equal(h.factor.factor, first.factor.factor, 1e-6), "train: the inputs differ in their ",
                   "subsampling factor: ", first.path, " has S = ", format_exact(first.factor.factor, 6), ", ", path,
                   " has S = ", format_exact(h.factor.factor, 6), " (one model serves one S; train them separately)");
      const double dx0 = voxel_override.empty() ? first.info.voxel.x : voxel_override[2];
      const double dx = voxel_override.empty() ? h.info.voxel.x : voxel_override[2];
      ISONET_CHECK(nearly_equal(dx, dx0, 1e-6) && h.info.voxel.unit == first.info.voxel.unit,
                   "train: the inputs differ in their lateral pixel size: ", first.path, " has ",
                   format_exact(dx0), " ", first.info.voxel.unit, ", ", path, " has ", format_exact(dx), " ",
                   h.info.voxel.unit, " (the PSF is built on one grid; train them separately)");
    }
    headers.push_back(std::move(h));
  }
  return headers;
}

// `total` training pairs shared over the inputs by voxel count (largest remainders), each input at
// least 1 (so more inputs than `total` get one pair each).
std::vector<int> share_pairs(int total, const std::vector<InputHeader>& headers) {
  std::vector<double> voxels;
  double sum = 0;
  for (const InputHeader& h : headers) {
    voxels.push_back(double(h.info.nz) * h.info.ny * h.info.nx);
    sum += voxels.back();
  }
  std::vector<int> shares(headers.size());
  std::vector<std::pair<double, size_t>> remainders;
  int given = 0;
  for (size_t i = 0; i < headers.size(); ++i) {
    const double exact = total * voxels[i] / sum;
    shares[i] = std::max(1, int(std::floor(exact)));
    given += shares[i];
    remainders.push_back({exact - std::floor(exact), i});
  }
  std::sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  for (size_t k = 0; given < total && k < remainders.size(); ++k, ++given) ++shares[remainders[k].second];
  return shares;
}

// The pairs of several volumes interleaved (a0, b0, a1, b1, ..., then the rest of the larger), so
// that the tail --validation holds out mixes the volumes; counts added, the first's normalization
// kept (the model records it; restore recomputes its own). One volume: its pairs unchanged.
TrainingPairs interleave_pairs(std::vector<TrainingPairs>& parts) {
  if (parts.size() == 1) return std::move(parts.front());
  TrainingPairs all;
  const TrainingPairs& first = parts.front();
  all.patch_size = first.patch_size;
  all.norm = first.norm;
  all.allowed_symmetries = first.allowed_symmetries;
  all.factor = first.factor;
  all.interp = first.interp;
  const size_t pp = size_t(first.patch_size) * first.patch_size;
  int longest = 0;
  for (const TrainingPairs& p : parts) {
    all.n += p.n;
    all.requested += p.requested;
    all.candidates += p.candidates;
    all.rejected_background += p.rejected_background;
    longest = std::max(longest, p.n);
  }
  all.inputs.reserve(size_t(all.n) * pp);
  all.targets.reserve(size_t(all.n) * pp);
  for (int k = 0; k < longest; ++k)
    for (const TrainingPairs& p : parts) {
      if (k >= p.n) continue;
      all.inputs.insert(all.inputs.end(), p.inputs.begin() + k * pp, p.inputs.begin() + (k + 1) * pp);
      all.targets.insert(all.targets.end(), p.targets.begin() + k * pp, p.targets.begin() + (k + 1) * pp);
      all.origins.push_back(p.origins[size_t(k)]);
    }
  return all;
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
  ISONET_CHECK(opt.validation >= 0 && opt.validation < 1, "train: --validation must be a fraction in [0, 1), got ",
               opt.validation);
  ISONET_CHECK(opt.validate_every >= 1, "train: --validate-every must be >= 1, got ", opt.validate_every);
  ISONET_CHECK(opt.best.empty() || opt.validation > 0,
               "train: --best needs --validation F (the fraction of pairs that scores the weights)");
  ISONET_CHECK(opt.best.empty() || opt.best != opt.out, "train: --best must name another file than --out");
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

  // Data: every input's header first (factor S stated exactly, pixel size, shape), then the training
  // pairs volume by volume (one volume in memory at a time).
  const std::vector<InputHeader> headers = read_input_headers(opt, voxel_override);
  const SubsamplingFactor factor = headers[0].factor;
  out << factor.message << "\n";
  for (const InputHeader& h : headers)
    if (!h.factor.warning.empty()) out << h.factor.warning << "\n";
  const double S = factor.factor;
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
  popt.device = device;
  const std::vector<int> shares = share_pairs(popt.n_patches, headers);
  Volume psf;
  TrainingPsfs kernels;
  std::vector<TrainingPairs> parts;
  for (size_t i = 0; i < headers.size(); ++i) {
    const std::string& path = headers[i].path;
    Volume data = read_volume(path, "input", nullptr, 2, opt.select);
    if (!voxel_override.empty()) data.voxel = VoxelSize{voxel_override[0], voxel_override[1], voxel_override[2], "um"};
    out << "input: " << path << " " << data.shape_str() << describe_selection(headers[i].info, opt.select)
        << ", voxel " << describe_voxel(data.voxel) << "\n";
    ISONET_CHECK(opt.patch <= data.ny && opt.patch <= data.nx, "train: --patch ", opt.patch,
                 " is larger than the lateral plane ", data.ny, "x", data.nx, " of '", path, "': use a --patch <= ",
                 (std::min(data.ny, data.nx) / 4) * 4, " (a multiple of 4)");
    if (i == 0) {
      // The PSF on the isotropic grid of the lateral pixel size (shared by every input), and its
      // training kernel.
      const double dx = data.voxel.x;
      const VoxelSize iso{dx, dx, dx, data.voxel.unit};
      PsfBuildContext ctx;
      ctx.units = parse_psf_units(opt.psf_units);
      ctx.size = opt.psf_size;
      if (!opt.psf_voxel.empty())
        ctx.file_voxel = parse_number_list(opt.psf_voxel, 3, "--psf-voxel", "Z,Y,X voxel size of the bead file");
      const TiffInfo& info = headers[0].info;
      ctx.data_voxel_known = info.has_z_spacing || info.has_xy_size || !voxel_override.empty();
      ctx.data_acquired_voxel = VoxelSize{S * dx, dx, dx, data.voxel.unit};
      psf = build_psf(spec, iso, ctx, out);
      TrainingPsfOptions topt;
      topt.plane = AxialPlane::XZ;
      topt.z_axis = LateralZAxis::Y;  // rows play z: the orientation of training_pairs.h and restore
      kernels = training_psfs(psf, topt);
      out << "PSF: " << describe_psf(spec, ctx.units) << " on grid " << psf.shape_str() << "; training kernel "
          << (opt.psf_mode == "split" ? "h_split" : "h_rot (full)") << " "
          << (opt.psf_mode == "split" ? kernels.split : kernels.rotated).shape_str() << " (rows = z)\n";
    }
    const Volume& kernel = opt.psf_mode == "split" ? kernels.split : kernels.rotated;
    TrainingPairOptions part_opt = popt;
    part_opt.n_patches = shares[i];
    part_opt.seed = opt.seed + i;  // other positions in every volume (the first keeps the run's seed)
    TrainingPairs part;
    with_oom_hint([&] { part = make_training_pairs(data, kernel, part_opt); },
                  {"train with --device cpu", "fewer or smaller training pairs: lower --patches or --patch"});
    ISONET_CHECK(part.n >= 1, "train: no training patch passed the foreground test in '", path, "' (",
                 part.candidates, " candidates, all background): is the volume empty or the --patch too large?");
    // Equal percentiles: (nearly) every voxel has one value, the normalized targets are ~0 and the
    // PSNR loss (which divides by the target's maximum) has nothing to measure.
    ISONET_CHECK(part.norm.p_hi > part.norm.p_lo, "train: '", path, "' is (nearly) constant: its percentiles p",
                 part.norm.low_percent, " and p", part.norm.high_percent, " are both ", part.norm.p_lo,
                 ", so there is no structure to learn");
    out << "training pairs" << (headers.size() > 1 ? " from " + path : std::string()) << ": " << part.n
        << " patches of " << opt.patch << "x" << opt.patch << " (" << part.requested << " requested, "
        << part.rejected_background << " background candidates rejected), normalization p" << part.norm.low_percent
        << " = " << part.norm.p_lo << ", p" << part.norm.high_percent << " = " << part.norm.p_hi << "\n";
    if (part.shortfall() > 0)
      out << "warning: only " << part.n << " of " << part.requested << " patches found enough foreground\n";
    parts.push_back(std::move(part));
  }
  std::vector<NormalizeParams> norms;
  std::vector<int> made;
  for (const TrainingPairs& p : parts) {
    norms.push_back(p.norm);
    made.push_back(p.n);
  }
  const TrainingPairs pairs = interleave_pairs(parts);  // (moves the parts' data)
  if (parts.size() > 1) out << "training pairs: " << pairs.n << " from " << parts.size() << " volumes\n";
  const int n_val = validation_count(opt.validation, pairs.n), n_train = pairs.n - n_val;
  if (n_val > 0)
    out << "validation: " << n_val << " of the " << pairs.n << " pairs held out, scored every " << opt.validate_every
        << " steps and at the end" << (opt.best.empty() ? "" : "; best weights to " + opt.best) << "\n";

  // The model: new, or the checkpoint to resume.
  const json settings = train_settings(opt, S, popt.n_patches, norms);
  std::string input_list;  // recorded with the settings (informative: --resume does not compare it)
  for (const InputHeader& h : headers) input_list += (input_list.empty() ? "" : ", ") + h.path;
  TrainResult result;
  result.factor = factor;
  result.pairs = n_train;
  result.input_pairs = made;
  result.validation_pairs = n_val;
  Model model;
  if (opt.resume) {
    model = load_model(opt.out);
    check_resume(model, settings, opt.out, result.losses, result.validation);
    out << "resume: " << opt.out << " at step " << model.steps << " of " << opt.steps << "\n";
  } else {
    model = Model::create(arch, opt.seed, opt.dropout);
  }
  model.metadata.normalization =
      Normalization{pairs.norm.low_percent, pairs.norm.high_percent, double(pairs.norm.p_lo), double(pairs.norm.p_hi)};
  model.metadata.psf = describe_psf(spec, parse_psf_units(opt.psf_units));
  model.metadata.psf_mode = opt.psf_mode;
  model.metadata.subsampling = S;
  model.metadata.extra_json = extra_json(settings, input_list, result.losses, result.validation);

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
  const OomHints oom_hint{"lower --batch or --patch, or train with --device cpu", "lower --batch or --patch"};
  with_oom_hint(
      [&] {
        Trainer trainer(model, device, tro);
        out << "train: " << architecture_name(arch) << " (" << trainer.layout().parameter_count() << " parameters) on "
            << device_name(device) << ", steps " << model.steps + 1 << ".." << opt.steps << ", batch " << B
            << ", lr " << opt.lr << ", conv " << conv_algo_name(conv.algo) << ", math " << conv_math_name(conv.math)
            << (opt.record_steps ? ", recorded steps" : "") << "\n";
        out.flush();
        Tensor inputs(Shape{B, 1, P, P}, Device::CPU), targets(Shape{B, 1, P, P}, Device::CPU);
        BatchSampler sampler(n_train, opt.seed);  // the held-out pairs [n_train, n) are never drawn
        TrainingProgress progress(model.steps, opt.steps, B, opt.progress);
        // Best validation score so far (a resumed run continues from its history).
        double best_psnr = -INFINITY;
        for (const auto& v : result.validation) best_psnr = std::max(best_psnr, v.psnr);
        auto validate = [&](long step) {
          const float psnr = validation_psnr(trainer, pairs, n_train, n_val, B, P);
          result.validation.push_back({step, psnr});
          std::string line = "validation at step " + std::to_string(step) + ": PSNR " + format_fixed(psnr, 2) + " dB";
          if (psnr > best_psnr) {
            best_psnr = psnr;
            line += " (best so far";
            if (!opt.best.empty()) {
              save_checkpoint(opt.best, trainer, settings, input_list, result.losses, result.validation, nullptr,
                              /*with_optimizer=*/false);
              line += ": written to " + opt.best;
            }
            line += ")";
          }
          progress.message(line);
        };
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
          if (n_val > 0 && (step % opt.validate_every == 0 || step == opt.steps)) validate(step);
          if (opt.checkpoint_every > 0 && step % opt.checkpoint_every == 0 && step < opt.steps)
            save_checkpoint(opt.out, trainer, settings, input_list, result.losses, result.validation, nullptr);
        }
        progress.finish();
        result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        save_checkpoint(opt.out, trainer, settings, input_list, result.losses, result.validation, &result.model);
      },
      oom_hint);
  out << "train: wrote " << opt.out << " (step " << result.model.steps << ", " << result.steps_this_run
      << " steps in " << TrainingProgress::format_duration(result.seconds) << ")\n";
  if (!result.validation.empty()) {
    const auto best = std::max_element(result.validation.begin(), result.validation.end(),
                                       [](const auto& a, const auto& b) { return a.psnr < b.psnr; });
    out << "validation: best PSNR " << format_fixed(best->psnr, 2) << " dB at step " << best->step << " of "
        << result.model.steps << (opt.best.empty() ? "" : " (weights in " + opt.best + ")") << ", last "
        << format_fixed(result.validation.back().psnr, 2) << " dB\n";
  }
  if (!opt.loss_plot.empty()) {
    write_loss_plot(opt.loss_plot, result.losses, 1, result.validation);
    out << "train: wrote the loss curve " << opt.loss_plot << "\n";
  }
  return result;
}

}  // namespace isonet::app
