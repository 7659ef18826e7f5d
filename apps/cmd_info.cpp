// cmd_info.cpp: `isonet info` (see cmd_info.h).
#include "apps/cmd_info.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <ostream>
#include <sstream>

#include "apps/common.h"
#include "apps/subsampling.h"
#include "imaging/tiff.h"
#include "kernels/error.h"
#include "nn/model_file.h"

namespace isonet::app {
namespace {

// libtiff's COMPRESSION_* codes of what microscopy files use.
std::string compression_name(int code) {
  switch (code) {
    case 1: return "uncompressed";
    case 5: return "LZW";
    case 7: return "JPEG";
    case 8:
    case 32946: return "deflate";
    case 32773: return "PackBits";
    case 34925: return "LZMA";
    case 50000: return "zstd";
    default: return "compression " + std::to_string(code);
  }
}

bool is_tiff(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char b[4] = {};
  in.read(b, 4);
  if (!in) return false;
  const bool ii = b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0;
  const bool mm = b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43);
  return ii || mm;
}

std::string describe_tiff(const std::string& path) {
  const TiffInfo info = read_tiff_info(path);
  std::ostringstream os;
  std::string container = info.imagej ? "ImageJ TIFF" : "TIFF";
  if (info.description.find("<OME") != std::string::npos) container = "OME-TIFF";
  os << path << ": " << container << (info.bigtiff ? " (BigTIFF)" : "") << ", " << sample_type_name(info.type)
     << ", " << compression_name(info.compression) << (info.tiled ? ", tiled" : "") << "\n";
  os << "  volume: " << info.nz << " planes of " << info.ny << " x " << info.nx << " (Z, Y, X)";
  if (info.channels > 1 || info.frames > 1) {
    os << "; the file holds " << info.channels << " channel(s) x " << info.frames
       << " time point(s): choose one volume with";
    if (info.channels > 1) os << " --channel 0.." << info.channels - 1;
    if (info.frames > 1) os << " --frame 0.." << info.frames - 1;
  }
  os << "\n";
  const std::string hint = mislabelled_stack_hint(info);
  if (!hint.empty()) os << "  note: " << hint << "\n";
  if (!info.has_z_spacing && !info.has_xy_size)
    os << "  voxel size: not stated\n";
  else
    os << "  voxel size: " << describe_voxel(info.voxel) << (info.has_z_spacing ? "" : " (no z spacing stated)")
       << (info.has_xy_size ? "" : " (no lateral pixel size stated)") << "\n";
  // Exactly what train would say (apps/subsampling.h), or why it needs --subsample.
  try {
    const SubsamplingFactor s = determine_subsampling(info, 0, {}, path);
    os << "  " << s.message << ": what train takes without --subsample\n";
    if (!s.warning.empty()) os << "  " << s.warning << "\n";
  } catch (const Error& e) {
    os << "  train needs --subsample: " << e.what() << "\n";
  }
  return os.str();
}

std::string describe_model(const std::string& path) {
  Model m;
  try {
    m = load_model(path);
  } catch (const Error& e) {
    fail("info: '", path, "' is neither a TIFF nor an isonet model file (as a model file: ", e.what(), ")");
  }
  std::ostringstream os;
  os << path << ": isonet model file, " << architecture_name(m.architecture) << " (" << m.layout.parameter_count()
     << " parameters), dropout " << m.dropout << "\n";
  os << "  trained " << m.steps << " steps"
     << (m.adam.empty() ? " (no Adam state: weights only, e.g. a --best file; --resume would restart Adam)"
                        : " (with Adam's state: train --resume continues it)")
     << "\n";
  const ModelMetadata& md = m.metadata;
  os << "  PSF: " << (md.psf.empty() ? "(not recorded)" : md.psf) << ", " << md.psf_mode
     << "; subsampling factor S = " << format_exact(md.subsampling, 6) << "\n";
  nlohmann::json extra;
  try {
    extra = nlohmann::json::parse(md.extra_json);
  } catch (const std::exception&) {
    extra = nlohmann::json::object();  // written by another tool: the metadata above is all there is
  }
  const bool several = extra.contains("train") && extra["train"].is_object() &&
                       extra["train"].contains("more_inputs_normalization");
  os << "  normalization: percentiles " << md.normalization.low_percentile << " / " << md.normalization.high_percentile
     << " (of the " << (several ? "first training input" : "training data") << ": " << md.normalization.low_value
     << " / " << md.normalization.high_value << "; restore recomputes them on its input)\n";
  if (extra.contains("train") && extra["train"].is_object()) {
    const auto& t = extra["train"];
    os << "  training:";
    for (const char* key : {"input", "channel", "frame", "batch", "patch", "patches", "lr", "seed", "interp",
                            "validation"})
      if (t.contains(key)) os << " " << key << " " << (t[key].is_string() ? t[key].get<std::string>() : t[key].dump());
    os << "\n";
  }
  if (extra.contains("loss_history") && extra["loss_history"].is_array() && !extra["loss_history"].empty()) {
    const auto& h = extra["loss_history"];
    // The mean of the last (up to) 100 finite losses: one batch's PSNR is noisy.
    double sum = 0;
    int count = 0;
    for (size_t i = h.size(); i-- > 0 && count < 100;)
      if (h[i].is_number()) sum += h[i].get<double>(), ++count;
    if (count > 0)
      os << "  training PSNR over the last " << count << " steps: " << format_fixed(-sum / count, 2)
         << " dB (batches with dropout)\n";
  }
  if (extra.contains("validation_history") && extra["validation_history"].is_array() &&
      !extra["validation_history"].empty()) {
    const auto& v = extra["validation_history"];
    size_t best = 0;
    for (size_t i = 1; i < v.size(); ++i)
      if (v[i][1].get<double>() > v[best][1].get<double>()) best = i;
    os << "  validation PSNR: best " << format_fixed(v[best][1].get<double>(), 2) << " dB at step "
       << v[best][0].get<long>() << ", last " << format_fixed(v.back()[1].get<double>(), 2) << " dB at step "
       << v.back()[0].get<long>() << " (" << v.size() << " scores)\n";
  }
  return os.str();
}

}  // namespace

std::string describe_file(const std::string& path) {
  require_file(path, "info");
  return is_tiff(path) ? describe_tiff(path) : describe_model(path);
}

void run_info(const InfoOptions& opt, std::ostream& out) {
  ISONET_CHECK(!opt.files.empty(), "info: no file given");
  for (const std::string& f : opt.files) out << describe_file(f);
}

}  // namespace isonet::app
