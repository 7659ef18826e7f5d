// parameters.h: the trainable tensors of a network. Their layout (names, shapes, offsets) is one
// flat array; on a backend, parameters, gradients and Adam's m and v are one allocation each,
// carved into per-tensor views by the same offsets, so zeroing the gradients or an Adam step is a
// single call over the whole flat array.
//
// Initialization (init_parameters): Glorot/Xavier-uniform weights, the Keras default the paper's
// code used: w ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out)), fan_in = c_in*k*k, fan_out =
// c_out*k*k; biases 0. The uniform draws come from the counter-based hash of kernels/rng.h keyed
// on (seed, tensor index, element index), so a seed reproduces the weights exactly, on any machine,
// and scripts/torch_reference.py recomputes the same numbers in Python.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/adam.h"
#include "nn/backend.h"

namespace isonet {

enum class ParamInit {
  GlorotUniform,             // U(-a, a)
  GlorotUniformNonNegative,  // |U(-a, a)|: for a scalar weight whose ReLU would otherwise die at init
  Zero,                      // biases
};

struct ParamSpec {
  std::string name;       // stable name, also the safetensors / PyTorch state_dict key
  std::vector<int> dims;  // e.g. [c_out, c_in, k, k] or [c_out]
  int fan_in = 1, fan_out = 1;
  ParamInit init = ParamInit::Zero;
  size_t numel() const;
  std::string dims_str() const;  // "[16,1,7,7]"
};

// Offsets of every tensor inside the flat array. Tensors start on 64-float boundaries (256 bytes,
// aligned vector access); the padding between them is zero in every array and stays zero under
// Adam (zero gradient, zero moments).
class ParamLayout {
 public:
  static constexpr size_t kAlignFloats = 64;
  ParamLayout() = default;
  explicit ParamLayout(std::vector<ParamSpec> specs);

  const std::vector<ParamSpec>& specs() const { return specs_; }
  size_t size() const { return specs_.size(); }
  const ParamSpec& spec(size_t i) const { return specs_[i]; }
  size_t offset(size_t i) const { return offsets_[i]; }
  // Index of the tensor called `name`, or -1.
  long find(const std::string& name) const;
  // Floats of the flat array (including padding) and trainable values (excluding it).
  size_t total_floats() const { return total_; }
  size_t parameter_count() const;

 private:
  std::vector<ParamSpec> specs_;
  std::vector<size_t> offsets_;
  size_t total_ = 0;
};

// Host copy of a flat parameter array initialized as described above (padding 0).
std::vector<float> init_parameters(const ParamLayout& layout, uint64_t seed);

// Parameters, gradients and Adam moments of one network on one backend.
class Parameters {
 public:
  // Allocates the four flat arrays on `backend` and zeroes them (the backend must outlive this).
  Parameters(Backend& backend, const ParamLayout& layout);

  const ParamLayout& layout() const { return layout_; }
  float* params() const { return params_.floats(); }
  float* grads() const { return grads_.floats(); }
  float* adam_m() const { return m_.floats(); }
  float* adam_v() const { return v_.floats(); }
  // Views of tensor i: [spec(i).numel()] floats.
  float* param(size_t i) const { return params() + layout_.offset(i); }
  float* grad(size_t i) const { return grads() + layout_.offset(i); }

  // Host <-> backend copies of whole flat arrays ([layout().total_floats()] floats each).
  void upload_params(const std::vector<float>& host);
  std::vector<float> download_params() const;
  void upload_adam_state(const std::vector<float>& m, const std::vector<float>& v);
  void download_adam_state(std::vector<float>& m, std::vector<float>& v) const;
  std::vector<float> download_grads() const;

  void zero_grads();
  void zero_adam_state();
  // One Adam update over the whole flat array (step 1-based).
  void adam_step(const AdamParams& adam, long step);
  // The same with the step's scalars read from `scalars` (backend memory) when it runs.
  void adam_step(const AdamParams& adam, const AdamStepScalars* scalars);

 private:
  void check_host_size(size_t got, const char* what) const;

  Backend& backend_;
  ParamLayout layout_;
  DeviceBuffer params_, grads_, m_, v_;
};

}  // namespace isonet
