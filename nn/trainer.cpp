// trainer.cpp: the training step and inference on top of Network, Parameters and Backend.
#include "nn/trainer.h"

#include <utility>

#include "kernels/error.h"
#include "kernels/log.h"

namespace isonet {

Trainer::Trainer(const Model& model, Device device, const TrainerOptions& options)
    : Trainer(model, make_backend(device), options) {}

Trainer::Trainer(const Model& model, std::unique_ptr<Backend> backend, const TrainerOptions& options)
    : backend_(std::move(backend)), network_(make_network(model.architecture, options.conv)), options_(options) {
  ISONET_CHECK(backend_ != nullptr, "trainer: no backend");
  const ParamLayout& layout = network_->layout();
  ISONET_CHECK(model.weights.size() == layout.total_floats(), "trainer: the ", architecture_name(model.architecture),
               " model has ", model.weights.size(), " weight floats, expected ", layout.total_floats());
  ISONET_CHECK(model.dropout >= 0.f && model.dropout < 1.f, "trainer: dropout must be in [0, 1), got ", model.dropout);
  adam_step_scalars(options_.adam, 1);  // validates the Adam settings now, not at the first step
  params_ = std::make_unique<Parameters>(*backend_, layout);
  params_->upload_params(model.weights);
  // Without saved moments Adam restarts (t = 0) even when the weights were trained before: bias
  // corrections for a late t on zero moments would make the first updates ~3x too large.
  if (!model.adam.empty()) {
    params_->upload_adam_state(model.adam.m, model.adam.v);
    adam_t_ = model.adam.step;
  }
  step_ = model.steps;
  model_.architecture = model.architecture;
  model_.dropout = model.dropout;
  model_.layout = layout;
  model_.metadata = model.metadata;
}

Trainer::~Trainer() = default;

void Trainer::prepare(int n, int h, int w, bool training) {
  network_->plan(*backend_, net_arena_, n, h, w, training);
  if (n == io_n_ && h == io_h_ && w == io_w_ && (io_training_ || !training)) return;
  const size_t count = size_t(n) * h * w;
  if (training) backend_->reserve_workspace(backend_->psnr_loss_workspace_floats({n, size_t(h) * w}));
  io_arena_.layout(*backend_, [&](Arena& a) {
    x_ = a.floats(count);
    loss_ = a.floats(1);
    t_ = training ? a.floats(count) : nullptr;
    dy_ = training ? a.floats(count) : nullptr;
  });
  io_n_ = n;
  io_h_ = h;
  io_w_ = w;
  io_training_ = training;
  ++io_layouts_;
}

void Trainer::stage(const Tensor& t, float* dst, const char* what) {
  const Shape want{io_n_, 1, io_h_, io_w_};
  t.require_shape(want, what);
  if (t.device() == Device::CPU)
    backend_->upload(dst, t.data(), t.bytes());
  else if (backend_->device() == Device::CUDA)
    backend_->copy(dst, t.data(), t.bytes());
  else
    device_copy(dst, Device::CPU, t.data(), t.device(), t.bytes());
}

void Trainer::stage_batch(const Tensor& inputs, const Tensor& targets) {
  const Shape& s = inputs.shape();
  ISONET_CHECK(s.c == 1, "trainer: inputs must have one channel ([n,1,h,w]), got ", s.str());
  prepare(s.n, s.h, s.w, /*training=*/true);
  stage(inputs, x_, "trainer: inputs");
  stage(targets, t_, "trainer: targets (must match the inputs)");
}

void Trainer::loss_and_gradients(const DropoutKey& key) {
  const float* y = network_->forward(*backend_, *params_, x_, &key);
  const PsnrLossShape ls{io_n_, size_t(io_h_) * io_w_};
  backend_->psnr_loss_forward(ls, y, t_, loss_, nullptr);
  backend_->psnr_loss_backward(ls, y, t_, dy_);
  network_->backward(*backend_, *params_, x_, dy_);
}

void Trainer::forward_backward(const Tensor& inputs, const Tensor& targets) {
  stage_batch(inputs, targets);
  // The dropout masks of the step that is about to be taken (Adam's t, 1-based).
  loss_and_gradients(DropoutKey{model_.dropout, options_.dropout_seed, uint64_t(step_ + 1)});
}

bool Trainer::replay_recorded_step() {
  if (!step_args_.get()) step_args_ = DeviceBuffer(*backend_, sizeof(StepArgs));
  auto* args = static_cast<StepArgs*>(step_args_.get());  // backend memory: addresses only
  // What the unrecorded step passes as arguments: the masks of step_ + 1, Adam's t + 1. Uploaded
  // in stream order, so the previous replay has read the old values before they change.
  const StepArgs now{uint64_t(step_ + 1) * DropoutKey::kDropoutLayerStride,
                     adam_step_scalars(options_.adam, adam_t_ + 1)};
  backend_->upload(args, &now, sizeof now);
  const RecordedLayout layout{network_->layouts(), io_layouts_, backend_->workspace_allocations()};
  if (!recorded_step_ || !(layout == recorded_layout_)) {
    recorded_step_.reset();
    try {
      recorded_step_ = backend_->record([this, args] {
        loss_and_gradients(DropoutKey{model_.dropout, options_.dropout_seed, 0, &args->dropout_offset});
        params_->adam_step(options_.adam, &args->adam);
      });
    } catch (const Error& e) {
      log_info(std::string("trainer: recording the training step failed (") + e.what() +
               "); training without recorded steps");
      options_.record_steps = false;
      return false;
    }
    recorded_layout_ = layout;
  }
  recorded_step_->replay();
  ++replays_;
  return true;
}

float Trainer::compute_gradients(const Tensor& inputs, const Tensor& targets) {
  forward_backward(inputs, targets);
  return last_loss();
}

void Trainer::train_step_async(const Tensor& inputs, const Tensor& targets) {
  stage_batch(inputs, targets);
  if (!(options_.record_steps && replay_recorded_step())) {
    // The dropout masks of the step that is about to be taken (Adam's t, 1-based).
    loss_and_gradients(DropoutKey{model_.dropout, options_.dropout_seed, uint64_t(step_ + 1)});
    params_->adam_step(options_.adam, adam_t_ + 1);
  }
  ++step_;
  ++adam_t_;
}

float Trainer::train_step(const Tensor& inputs, const Tensor& targets) {
  train_step_async(inputs, targets);
  return last_loss();
}

float Trainer::last_loss() {
  ISONET_CHECK(loss_ != nullptr && io_training_, "trainer: no training step has run yet");
  float loss = 0.f;
  backend_->download(&loss, loss_, sizeof(float));
  return loss;
}

std::vector<float> Trainer::gradients() const { return params_->download_grads(); }

void Trainer::predict(const float* in, float* out, int n, int h, int w) {
  prepare(n, h, w, /*training=*/false);
  const size_t bytes = size_t(n) * h * w * sizeof(float);
  backend_->upload(x_, in, bytes);
  const float* y = network_->forward(*backend_, *params_, x_, nullptr);
  backend_->download(out, y, bytes);
}

Tensor Trainer::predict(const Tensor& inputs) {
  const Shape& s = inputs.shape();
  ISONET_CHECK(s.c == 1, "predict: inputs must have one channel ([n,1,h,w]), got ", s.str());
  prepare(s.n, s.h, s.w, /*training=*/false);
  stage(inputs, x_, "predict: inputs");
  const float* y = network_->forward(*backend_, *params_, x_, nullptr);
  Tensor out(s, inputs.device());
  if (out.device() == Device::CPU)
    backend_->download(out.data(), y, out.bytes());
  else if (backend_->device() == Device::CUDA) {
    backend_->copy(out.data(), y, out.bytes());
    backend_->synchronize();  // the result is read through another stream's view of memory
  } else
    device_copy(out.data(), out.device(), y, Device::CPU, out.bytes());
  return out;
}

std::vector<float> Trainer::weights() const { return params_->download_params(); }

void Trainer::export_to(Model& model) const {
  ISONET_CHECK(model.architecture == architecture(), "trainer: cannot export ", architecture_name(architecture()),
               " weights into a ", architecture_name(model.architecture), " model");
  model.layout = layout();
  model.weights = params_->download_params();
  params_->download_adam_state(model.adam.m, model.adam.v);
  model.adam.step = adam_t_;
  model.steps = step_;
}

Model Trainer::export_model() const {
  Model m;
  m.architecture = model_.architecture;
  m.dropout = model_.dropout;
  m.metadata = model_.metadata;
  export_to(m);
  return m;
}

}  // namespace isonet
