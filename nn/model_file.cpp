// model_file.cpp: Model <-> safetensors (format described in model_file.h).
#include "nn/model_file.h"

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "kernels/error.h"
#include "nn/safetensors.h"

namespace isonet {

namespace {

const char* const kOptimizerM = "optimizer.m.";
const char* const kOptimizerV = "optimizer.v.";

std::string number(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*g", digits, v);
  return buf;
}

std::vector<int64_t> spec_shape(const ParamSpec& s) { return std::vector<int64_t>(s.dims.begin(), s.dims.end()); }

SafeTensor tensor_of(const ParamLayout& layout, size_t i, const std::vector<float>& flat) {
  const float* p = flat.data() + layout.offset(i);
  return {spec_shape(layout.spec(i)), std::vector<float>(p, p + layout.spec(i).numel())};
}

// Errors while interpreting an already valid safetensors file.
struct Reader {
  const std::string& path;
  const SafetensorsFile& file;

  [[noreturn]] void error(const std::string& problem) const { fail("model file '", path, "': ", problem); }

  const std::string& meta(const std::string& key) const {
    auto it = file.metadata.find(key);
    if (it == file.metadata.end()) error("missing metadata '" + key + "'");
    return it->second;
  }
  double meta_number(const std::string& key) const {
    const std::string& s = meta(key);
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(s, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != s.size() || !std::isfinite(v))
      error("metadata '" + key + "' = '" + s + "' is not a finite number");
    return v;
  }
  long meta_integer(const std::string& key) const {
    double v = meta_number(key);
    if (v < 0 || v != std::floor(v) || v > 1e15) error("metadata '" + key + "' = '" + meta(key) + "' is not a count");
    return static_cast<long>(v);
  }
  // Copies tensor `name` (which must have the spec's shape and finite values) into flat.
  void take(const std::string& name, const ParamSpec& spec, float* dst) const {
    auto it = file.tensors.find(name);
    if (it == file.tensors.end()) error("missing tensor '" + name + "'");
    const SafeTensor& t = it->second;
    if (t.shape != spec_shape(spec))
      error("tensor '" + name + "' has shape " + shape_string(t.shape) + ", the architecture needs " + spec.dims_str());
    for (size_t i = 0; i < t.data.size(); ++i)
      if (!std::isfinite(t.data[i])) error("tensor '" + name + "' holds a non-finite value at element " + std::to_string(i));
    std::copy(t.data.begin(), t.data.end(), dst);
  }
};

}  // namespace

void save_model(const std::string& path, const Model& model, bool with_optimizer) {
  const ParamLayout& layout = model.layout;
  ISONET_CHECK(model.weights.size() == layout.total_floats(), "saving model '", path, "': ", model.weights.size(),
               " weight floats, the layout needs ", layout.total_floats());
  const bool optimizer = with_optimizer && !model.adam.empty();
  if (optimizer)
    ISONET_CHECK(model.adam.m.size() == layout.total_floats() && model.adam.v.size() == layout.total_floats(),
                 "saving model '", path, "': Adam state does not match the layout");
  nlohmann::json extra;
  try {
    extra = nlohmann::json::parse(model.metadata.extra_json);
  } catch (const nlohmann::json::parse_error& e) {
    fail("saving model '", path, "': metadata extra_json is not valid JSON: ", e.what());
  }
  ISONET_CHECK(extra.is_object(), "saving model '", path, "': metadata extra_json must be a JSON object");
  ISONET_CHECK(model.metadata.psf_mode == "full" || model.metadata.psf_mode == "split", "saving model '", path,
               "': psf_mode must be 'full' or 'split', got '", model.metadata.psf_mode, "'");

  SafetensorsFile f;
  for (size_t i = 0; i < layout.size(); ++i) {
    const std::string& name = layout.spec(i).name;
    f.tensors[name] = tensor_of(layout, i, model.weights);
    if (optimizer) {
      f.tensors[kOptimizerM + name] = tensor_of(layout, i, model.adam.m);
      f.tensors[kOptimizerV + name] = tensor_of(layout, i, model.adam.v);
    }
  }
  const ModelMetadata& md = model.metadata;
  f.metadata = {
      {"format", kModelFormatName},
      {"format_version", std::to_string(kModelFormatVersion)},
      {"architecture", architecture_name(model.architecture)},
      {"dropout", number(model.dropout, 9)},
      {"training_steps", std::to_string(model.steps)},
      {"normalization_low_percentile", number(md.normalization.low_percentile, 17)},
      {"normalization_high_percentile", number(md.normalization.high_percentile, 17)},
      {"normalization_low_value", number(md.normalization.low_value, 17)},
      {"normalization_high_value", number(md.normalization.high_value, 17)},
      {"psf", md.psf},
      {"psf_mode", md.psf_mode},
      {"subsampling", number(md.subsampling, 17)},
      {"extra", md.extra_json},
  };
  if (optimizer) f.metadata["adam_step"] = std::to_string(model.adam.step);
  write_safetensors(path, f);
}

Model load_model(const std::string& path) {
  const SafetensorsFile f = read_safetensors(path);
  const Reader r{path, f};
  auto fmt = f.metadata.find("format");
  if (fmt == f.metadata.end() || fmt->second != kModelFormatName)
    r.error("not an isonet model (metadata 'format' is missing or not '" + std::string(kModelFormatName) + "')");
  const long version = r.meta_integer("format_version");
  if (version < 1 || version > kModelFormatVersion)
    r.error("format version " + std::to_string(version) + " is not supported (this build reads up to " +
            std::to_string(kModelFormatVersion) + "; written by a newer isonet?)");
  Architecture arch;
  try {
    arch = parse_architecture(r.meta("architecture"));
  } catch (const Error& e) {
    r.error(e.what());
  }

  Model m = Model::empty(arch);
  m.dropout = static_cast<float>(r.meta_number("dropout"));
  if (!(m.dropout >= 0.f && m.dropout < 1.f)) r.error("metadata 'dropout' = '" + r.meta("dropout") + "' is not in [0, 1)");
  m.steps = r.meta_integer("training_steps");
  const ParamLayout& layout = m.layout;
  for (size_t i = 0; i < layout.size(); ++i) r.take(layout.spec(i).name, layout.spec(i), m.weights.data() + layout.offset(i));

  // Optimizer state: all or nothing.
  const bool optimizer = f.metadata.count("adam_step") > 0;
  if (optimizer) {
    m.adam.step = r.meta_integer("adam_step");
    m.adam.m.assign(layout.total_floats(), 0.f);
    m.adam.v.assign(layout.total_floats(), 0.f);
    for (size_t i = 0; i < layout.size(); ++i) {
      const ParamSpec& s = layout.spec(i);
      r.take(kOptimizerM + s.name, s, m.adam.m.data() + layout.offset(i));
      r.take(kOptimizerV + s.name, s, m.adam.v.data() + layout.offset(i));
    }
  }
  const size_t expected = layout.size() * (optimizer ? 3 : 1);
  if (f.tensors.size() != expected) {
    for (const auto& [name, t] : f.tensors) {
      std::string base = name;
      if (optimizer && (name.rfind(kOptimizerM, 0) == 0 || name.rfind(kOptimizerV, 0) == 0)) base = name.substr(12);
      if (layout.find(base) < 0)
        r.error("unexpected tensor '" + name + "' for architecture " + architecture_name(arch) +
                (optimizer ? "" : " (optimizer tensors need the 'adam_step' metadata)"));
    }
  }

  ModelMetadata& md = m.metadata;
  md.normalization.low_percentile = r.meta_number("normalization_low_percentile");
  md.normalization.high_percentile = r.meta_number("normalization_high_percentile");
  md.normalization.low_value = r.meta_number("normalization_low_value");
  md.normalization.high_value = r.meta_number("normalization_high_value");
  md.psf = r.meta("psf");
  md.psf_mode = r.meta("psf_mode");
  if (md.psf_mode != "full" && md.psf_mode != "split") r.error("metadata 'psf_mode' = '" + md.psf_mode + "' is not full or split");
  md.subsampling = r.meta_number("subsampling");
  if (!(md.subsampling > 0)) r.error("metadata 'subsampling' must be positive, got " + r.meta("subsampling"));
  md.extra_json = r.meta("extra");
  nlohmann::json extra;
  try {
    extra = nlohmann::json::parse(md.extra_json);
  } catch (const nlohmann::json::parse_error& e) {
    r.error(std::string("metadata 'extra' is not valid JSON: ") + e.what());
  }
  if (!extra.is_object()) r.error("metadata 'extra' is not a JSON object");
  return m;
}

}  // namespace isonet
