// cmd_restore.cpp: `isonet restore` (see cmd_restore.h).
#include "apps/cmd_restore.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "apps/cmd_preview.h"
#include "apps/common.h"
#include "apps/progress.h"
#include "apps/restore_memory.h"
#include "imaging/normalize.h"
#include "imaging/tiff.h"
#include "kernels/error.h"
#include "nn/model_file.h"
#include "nn/trainer.h"

namespace isonet::app {
namespace {

int round_up4(int n) { return (n + 3) / 4 * 4; }

// numpy 'reflect' padding index (edge not repeated): -1 -> 1, n -> n-2; folds repeatedly.
int reflect_index(int i, int n) {
  if (n == 1) return 0;
  const int period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

// One orientation of axial slices of the upsampled volume up [Z', Y, X]: XZ slices (fixed y,
// [Z', X]) or YZ slices (fixed x, [Z', Y]); z along rows in both (the training orientation).
struct SliceSet {
  const Volume& up;
  bool xz;
  int count() const { return xz ? up.ny : up.nx; }
  int rows() const { return up.nz; }
  int cols() const { return xz ? up.nx : up.ny; }
  // dst [Hp, Wp] = slice `s` padded by reflection.
  void gather(int s, int Hp, int Wp, float* dst) const {
    const int H = rows(), W = cols();
    std::vector<int> col(static_cast<size_t>(Wp));
    for (int c = 0; c < Wp; ++c) col[size_t(c)] = reflect_index(c, W);
    for (int r = 0; r < Hp; ++r) {
      const int z = reflect_index(r, H);
      float* d = dst + size_t(r) * Wp;
      if (xz) {
        const float* src = up.data.data() + up.index(z, s, 0);
        for (int c = 0; c < Wp; ++c) d[c] = src[col[size_t(c)]];
      } else {
        for (int c = 0; c < Wp; ++c) d[c] = up.at(z, col[size_t(c)], s);
      }
    }
  }
};

// Runs the network on one padded slice [Hp, Wp] in tiles whose cores are [th, tw] with `margin`
// pixels of context (clipped at the slice edges, where the untiled run sees the same zero padding).
void predict_tiled(Trainer& trainer, const float* slice, float* out, int Hp, int Wp, int th, int tw, int margin,
                   std::vector<float>& tin, std::vector<float>& tout) {
  const std::vector<TileSpan> rows = tile_spans(Hp, th, margin), cols = tile_spans(Wp, tw, margin);
  for (const TileSpan& r : rows)
    for (const TileSpan& c : cols) {
      const int rh = r.r1 - r.r0, rw = c.r1 - c.r0;
      tin.resize(size_t(rh) * rw);
      tout.resize(tin.size());
      for (int i = 0; i < rh; ++i)
        std::memcpy(tin.data() + size_t(i) * rw, slice + size_t(r.r0 + i) * Wp + c.r0, size_t(rw) * sizeof(float));
      trainer.predict(tin.data(), tout.data(), 1, rh, rw);
      for (int i = r.a0; i < r.a1; ++i)
        std::memcpy(out + size_t(i) * Wp + c.a0, tout.data() + size_t(i - r.r0) * rw + (c.a0 - c.r0),
                    size_t(c.a1 - c.a0) * sizeof(float));
    }
}

}  // namespace

Fusion parse_fusion(const std::string& name) {
  if (name == "mean") return Fusion::Mean;
  if (name == "geometric") return Fusion::Geometric;
  fail("unknown --fusion '", name, "' (accepted: mean, geometric)");
}

Interp model_interp(const Model& model) {
  try {
    const auto j = nlohmann::json::parse(model.metadata.extra_json);
    if (j.contains("interp") && j["interp"].is_string()) return parse_interp(j["interp"].get<std::string>().c_str());
  } catch (const std::exception&) {
  }
  return Interp::Cubic;
}

Volume restore_volume(const Model& model, const Volume& input, const RestoreSettings& st, std::ostream& log,
                      RestoreStats* stats) {
  const auto t0 = std::chrono::steady_clock::now();
  ISONET_CHECK(input.nz >= 1 && input.ny >= 1 && input.nx >= 1, "restore: empty input ", input.shape_str());
  require_finite(input, "restore input");
  ISONET_CHECK(st.batch >= 1, "restore: --batch must be >= 1, got ", st.batch);
  ISONET_CHECK(st.tile_margin >= 0 && st.tile_margin % 4 == 0, "restore: tile margin must be a multiple of 4");
  const double S = model.metadata.subsampling;
  ISONET_CHECK(std::isfinite(S) && S >= 1.0, "restore: the model's subsampling factor ", S, " is not >= 1");

  // 1. Normalization with the model's percentiles, recomputed on this input.
  const Normalization& mn = model.metadata.normalization;
  const NormalizeParams norm = percentile_params(input, mn.low_percentile, mn.high_percentile);
  log << "restore: normalization p" << mn.low_percentile << " = " << norm.p_lo << ", p" << mn.high_percentile << " = "
      << norm.p_hi << " (recomputed on this input; the training data had " << mn.low_value << ", " << mn.high_value
      << ")\n";
  Volume work = input;
  normalize_inplace(work, norm);

  // 2. Axial upsampling.
  Volume up = upsample_axial(work, S, st.interp);
  work = Volume();
  log << "restore: upsampled " << input.shape_str() << " -> " << up.shape_str() << " by S = " << format_exact(S, 6)
      << " (" << interp_name(st.interp) << ")\n";

  // 3. The network on every XZ and YZ slice; 4. fusion into `result`.
  TrainerOptions tro;
  tro.conv = st.conv;
  Trainer trainer(model, st.device, tro);
  InferenceMemory mem(model.architecture, st.device, st.conv);
  if (st.conv.algo != Conv2dAlgo::Auto) log << "restore: conv algorithm " << conv_algo_name(st.conv.algo) << " (forced)\n";
  if (st.conv.math != Conv2dMath::Fp32 && st.device == Device::CUDA)
    log << "restore: conv math " << conv_math_name(st.conv.math) << " (tensor cores)\n";
  note_cpu_conv_math(log, "restore", st.conv.math, st.device);
  RestoreMemory held;  // what the run holds so far (each buffer only grows)
  Volume result(up.nz, up.ny, up.nx);
  RestoreStats local;
  local.factor = S;
  std::vector<float> in, out, tin, tout;
  WorkProgress progress("restore", long(up.ny) + up.nx, "slices", st.progress);  // XZ slices, then YZ
  long slices_done = 0;
  for (int pass = 0; pass < 2; ++pass) {
    const SliceSet set{up, pass == 0};
    const int H = set.rows(), W = set.cols(), Hp = round_up4(H), Wp = round_up4(W);
    const SlicePlan plan = plan_slices(mem, held, set.count(), Hp, Wp, st.batch, st.max_memory_bytes, st.tile_margin);
    held = plan_memory(mem, held, plan, set.count(), Hp, Wp, st.tile_margin);
    const int nb = plan.batch;
    progress.close();  // the log line starts on a fresh line
    log << "restore: " << set.count() << " " << (set.xz ? "XZ" : "YZ") << " slices [" << H << "," << W << "] (padded "
        << Hp << "x" << Wp << ")";
    if (plan.th)
      log << " in tiles of " << plan.th << "x" << plan.tw << " with a " << st.tile_margin << "-pixel margin";
    else
      log << ", " << nb << " per call";
    log << " (" << int(std::ceil(double(held.total()) / 1048576.0)) << " MB of " << (st.max_memory_bytes >> 20)
        << " MB)\n";
    log.flush();
    if (pass == 0) {
      local.batch_used = nb;
      local.tile_h = plan.th;
      local.tile_w = plan.tw;
    } else if (plan.th) {
      local.tile_h = plan.th;
      local.tile_w = plan.tw;
      local.batch_used = 1;
    }
    const size_t slice = size_t(Hp) * Wp;
    in.resize(slice * nb);
    out.resize(slice * nb);
    for (int s0 = 0; s0 < set.count(); s0 += nb) {
      const int n = std::min(nb, set.count() - s0);
      for (int i = 0; i < n; ++i) set.gather(s0 + i, Hp, Wp, in.data() + slice * i);
      if (plan.th)
        predict_tiled(trainer, in.data(), out.data(), Hp, Wp, plan.th, plan.tw, st.tile_margin, tin, tout);
      else
        trainer.predict(in.data(), out.data(), n, Hp, Wp);
      for (int i = 0; i < n; ++i) {
        const int s = s0 + i;
        const float* o = out.data() + slice * i;
        for (int z = 0; z < H; ++z)
          for (int c = 0; c < W; ++c) {
            float& r = set.xz ? result.at(z, s, c) : result.at(z, c, s);
            const float p = o[size_t(z) * Wp + c];
            if (pass == 0)
              r = st.fusion == Fusion::Mean ? p : std::max(p, 0.f);
            else
              r = st.fusion == Fusion::Mean ? 0.5f * (r + p) : std::sqrt(r * std::max(p, 0.f));
          }
      }
      slices_done += n;
      progress.update(slices_done);
    }
  }
  progress.finish();

  // 5. Undo the normalization; isotropic voxel.
  local.memory_bytes = held.total();
  denormalize_inplace(result, norm);
  result.voxel = input.voxel;
  result.voxel.z = input.voxel.x;
  local.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (stats) *stats = local;
  return result;
}

Volume run_restore(const RestoreOptions& opt) {
  std::ostream& out = report_stream(opt.quiet);
  ISONET_CHECK(!opt.output.empty(), "restore: --output is required");
  ISONET_CHECK(opt.max_memory_mb > 0, "restore: --max-memory must be > 0 MB, got ", opt.max_memory_mb);
  require_file(opt.model, "model");
  const Model model = load_model(opt.model);
  TiffInfo info;
  const Volume input = read_volume(opt.input, "input", &info, 2, opt.select);
  RestoreSettings st;
  st.device = select_device(opt.device);
  st.interp = opt.interp.empty() ? model_interp(model) : parse_interp(opt.interp.c_str());
  st.fusion = parse_fusion(opt.fusion);
  st.batch = opt.batch;
  st.conv.algo = parse_conv_algo(opt.conv, "restore: --conv");
  st.conv.math = parse_conv_math(opt.math, "restore: --math");
  st.max_memory_bytes = size_t(opt.max_memory_mb * 1048576.0);
  st.progress = opt.progress;
  const double S = model.metadata.subsampling;
  out << "restore: model " << opt.model << " (" << architecture_name(model.architecture) << ", " << model.steps
      << " steps, PSF " << model.metadata.psf << ", " << model.metadata.psf_mode << "), subsampling factor S = "
      << format_exact(S, 6) << " (from the model)\n";
  // The network learned on inputs upsampled with the training interpolation; another one changes
  // what it sees (allowed, e.g. to compare, but said).
  if (st.interp != model_interp(model))
    out << "warning: upsampling with " << interp_name(st.interp) << " interpolation, the model was trained on "
        << interp_name(model_interp(model)) << "-upsampled inputs\n";
  if (info.channels > 1 || info.frames > 1)
    out << "input: " << opt.input << " " << input.shape_str() << describe_selection(info, opt.select) << "\n";
  if (info.has_z_spacing && input.voxel.x > 0 && !nearly_equal(input.voxel.z / input.voxel.x, S, 1e-2))
    out << "warning: the input's voxel size gives S = " << format_exact(input.voxel.z) << "/"
        << format_exact(input.voxel.x) << " = " << format_exact(input.voxel.z / input.voxel.x, 6)
        << ", the model was trained for S = " << format_exact(S, 6) << "; restoring with the model's factor\n";
  Volume result;
  // The host holds the upsampled volume and the result besides the network's working memory.
  const int out_nz = upsampled_length(input.nz, S);
  const double volumes_mb = 2.0 * out_nz * input.ny * input.nx * sizeof(float) / 1048576.0;
  std::ostringstream host_hint;
  host_hint << "restore holds the upsampled volume and the result in host memory (2 x " << out_nz << "x" << input.ny << "x" << input.nx << " float32 = "
            << long(std::ceil(volumes_mb)) << " MB) besides the network's working memory (up to --max-memory, "
            << opt.max_memory_mb << " MB" << (st.device == Device::CPU ? ", host memory on the CPU" : ", on the GPU")
            << "): lower --max-memory, or restore a smaller region of the volume";
  with_oom_hint([&] { result = restore_volume(model, input, st, out); },
                {"lower --max-memory (smaller slabs/tiles) or --batch, or use --device cpu", host_hint.str()});
  write_tiff(opt.output, result);
  out << "restore: wrote " << opt.output << " " << result.shape_str() << ", voxel " << describe_voxel(result.voxel)
      << "\n";
  if (!opt.preview.empty()) {
    write_preview(opt.preview, {&input, &result});
    out << "restore: wrote the preview " << opt.preview << " (rows: input, restored; columns: xy, xz, yz)\n";
  }
  return result;
}

std::vector<std::string> run_restore_inputs(RestoreOptions opt, const std::vector<std::string>& inputs,
                                            const std::string& output_dir) {
  ISONET_CHECK(!inputs.empty(), "restore: --input is required");
  ISONET_CHECK(opt.output.empty() != output_dir.empty(), "restore: give --output FILE (one input) or --output-dir ",
               "DIR (one or several inputs), not ", opt.output.empty() ? "neither" : "both");
  if (!opt.output.empty()) {
    ISONET_CHECK(inputs.size() == 1, "restore: ", inputs.size(), " inputs need --output-dir DIR (one file each), ",
                 "not --output");
    opt.input = inputs.front();
    run_restore(opt);
    return {opt.output};
  }
  ISONET_CHECK(inputs.size() == 1 || opt.preview.empty(),
               "restore: --preview takes one input (preview several results with isonet preview)");
  struct stat st {};
  ISONET_CHECK(stat(output_dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), "restore: --output-dir '", output_dir,
               "' is not an existing directory");
  std::vector<std::string> outputs;
  for (const std::string& in : inputs) {
    std::string name = in.substr(in.find_last_of('/') + 1);  // npos + 1 == 0: no directory part
    for (const char* ext : {".ome.tiff", ".ome.tif", ".tiff", ".tif", ".TIFF", ".TIF"})
      if (name.size() > std::strlen(ext) && name.compare(name.size() - std::strlen(ext), std::string::npos, ext) == 0) {
        name.resize(name.size() - std::strlen(ext));
        break;
      }
    const std::string out = output_dir + "/" + name + "_iso.tif";
    ISONET_CHECK(std::find(outputs.begin(), outputs.end(), out) == outputs.end(), "restore: two inputs would ",
                 "both be written to '", out, "' (same file name); restore them into different --output-dir");
    outputs.push_back(out);
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    opt.input = inputs[i];
    opt.output = outputs[i];
    run_restore(opt);
  }
  return outputs;
}

}  // namespace isonet::app
