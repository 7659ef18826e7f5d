// parameters.cpp: flat parameter layout, seeded Glorot-uniform init, and the per-backend arrays.
#include "nn/parameters.h"

#include <cmath>
#include <sstream>

#include "kernels/error.h"
#include "kernels/rng.h"

namespace isonet {

size_t ParamSpec::numel() const {
  size_t n = 1;
  for (int d : dims) n *= static_cast<size_t>(d);
  return n;
}

std::string ParamSpec::dims_str() const {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < dims.size(); ++i) os << (i ? "," : "") << dims[i];
  os << "]";
  return os.str();
}

ParamLayout::ParamLayout(std::vector<ParamSpec> specs) : specs_(std::move(specs)) {
  for (const ParamSpec& s : specs_) {
    offsets_.push_back(total_);
    total_ += (s.numel() + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  }
}

long ParamLayout::find(const std::string& name) const {
  for (size_t i = 0; i < specs_.size(); ++i)
    if (specs_[i].name == name) return static_cast<long>(i);
  return -1;
}

size_t ParamLayout::parameter_count() const {
  size_t n = 0;
  for (const ParamSpec& s : specs_) n += s.numel();
  return n;
}

std::vector<float> init_parameters(const ParamLayout& layout, uint64_t seed) {
  std::vector<float> flat(layout.total_floats(), 0.f);
  for (size_t t = 0; t < layout.size(); ++t) {
    const ParamSpec& s = layout.spec(t);
    if (s.init == ParamInit::Zero) continue;
    const double limit = std::sqrt(6.0 / (double(s.fan_in) + double(s.fan_out)));
    float* w = flat.data() + layout.offset(t);
    for (size_t i = 0; i < s.numel(); ++i) {
      // u in (0, 1): the +0.5 keeps the draw off both interval ends.
      double u = (double(counter_random_u32(seed, t, i)) + 0.5) / 4294967296.0;
      double x = limit * (2.0 * u - 1.0);
      if (s.init == ParamInit::GlorotUniformNonNegative) x = std::fabs(x);
      w[i] = static_cast<float>(x);
    }
  }
  return flat;
}

Parameters::Parameters(Backend& backend, const ParamLayout& layout)
    : backend_(backend), layout_(layout) {
  const size_t bytes = layout_.total_floats() * sizeof(float);
  params_ = DeviceBuffer(backend_, bytes);
  grads_ = DeviceBuffer(backend_, bytes);
  m_ = DeviceBuffer(backend_, bytes);
  v_ = DeviceBuffer(backend_, bytes);
  backend_.zero(params(), bytes);
  zero_grads();
  zero_adam_state();
}

void Parameters::check_host_size(size_t got, const char* what) const {
  ISONET_CHECK(got == layout_.total_floats(), "parameters: ", what, " has ", got, " floats, the layout needs ",
               layout_.total_floats());
}

void Parameters::upload_params(const std::vector<float>& host) {
  check_host_size(host.size(), "uploaded parameter array");
  backend_.upload(params(), host.data(), host.size() * sizeof(float));
}

std::vector<float> Parameters::download_params() const {
  std::vector<float> host(layout_.total_floats());
  backend_.download(host.data(), params(), host.size() * sizeof(float));
  return host;
}

std::vector<float> Parameters::download_grads() const {
  std::vector<float> host(layout_.total_floats());
  backend_.download(host.data(), grads(), host.size() * sizeof(float));
  return host;
}

void Parameters::upload_adam_state(const std::vector<float>& m, const std::vector<float>& v) {
  check_host_size(m.size(), "Adam m");
  check_host_size(v.size(), "Adam v");
  backend_.upload(adam_m(), m.data(), m.size() * sizeof(float));
  backend_.upload(adam_v(), v.data(), v.size() * sizeof(float));
}

void Parameters::download_adam_state(std::vector<float>& m, std::vector<float>& v) const {
  m.resize(layout_.total_floats());
  v.resize(layout_.total_floats());
  backend_.download(m.data(), adam_m(), m.size() * sizeof(float));
  backend_.download(v.data(), adam_v(), v.size() * sizeof(float));
}

void Parameters::zero_grads() { backend_.zero(grads(), grads_.bytes()); }

void Parameters::zero_adam_state() {
  backend_.zero(adam_m(), m_.bytes());
  backend_.zero(adam_v(), v_.bytes());
}

void Parameters::adam_step(const AdamParams& adam, long step) {
  backend_.adam_update(adam, step, params(), grads(), adam_m(), adam_v(), layout_.total_floats());
}

void Parameters::adam_step(const AdamParams& adam, const AdamStepScalars* scalars) {
  backend_.adam_update_scalars(adam, scalars, params(), grads(), adam_m(), adam_v(), layout_.total_floats());
}

}  // namespace isonet
