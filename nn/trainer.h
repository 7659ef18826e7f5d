// trainer.h: one model on one device: training steps (forward with dropout, the paper's PSNR loss,
// backward, one Adam update) and inference. Batches are host or device Tensors [n,1,h,w]; they are
// copied into the trainer's own device buffers explicitly. Buffers are laid out once per
// (batch, h, w) and reused, so a loop with fixed sizes allocates nothing after its first step,
// and the only host synchronization in a step is reading the loss, when asked.
#pragma once
#include <cstdint>
#include <memory>

#include "kernels/adam.h"
#include "nn/arena.h"
#include "nn/backend.h"
#include "nn/model.h"
#include "nn/network.h"
#include "nn/parameters.h"
#include "nn/tensor.h"

namespace isonet {

struct TrainerOptions {
  AdamParams adam;         // lr 5e-3 (the paper), PyTorch epsilon convention (kernels/adam.h)
  uint64_t dropout_seed = 0;  // the dropout masks are keyed on (dropout_seed, step, layer)
  // How the network's convs run (make_network): a speed setting, not part of the model. algo
  // (results agree up to FFT rounding): Auto is the CPU's cost model; on CUDA direct, until the
  // CUDA FFT path is benchmarked on a GPU. math: Tf32 runs the CUDA direct convs on tensor cores
  // (~1e-3 relative rounding); the CPU ignores it (fp32).
  ConvSettings conv;
  // Record the training step once per batch and patch size and replay it (Backend::record): on
  // CUDA a CUDA graph, one launch per step instead of ~100 (what changes per step, the dropout
  // step and Adam's scalars, is uploaded to device memory first); on the CPU the same step logic
  // runs without a graph. Results are bit-identical to unrecorded steps. While a step is being
  // recorded (the first step of each size) no other thread may use CUDA's legacy default stream
  // (backend_cuda.cpp). When recording fails (the backend refuses the capture), the trainer says so
  // in one log line and trains without it. Off by default until a GPU run has verified it
  // (tests/test_cuda_model_parity.cpp).
  bool record_steps = false;
};

class Trainer {
 public:
  // Copies the model's weights (and Adam state and step count, when present) onto `device`.
  Trainer(const Model& model, Device device, const TrainerOptions& options = {});
  // The same on a backend the caller made (an embedding application's, or a test's instrumented
  // one); the trainer owns it from here on.
  Trainer(const Model& model, std::unique_ptr<Backend> backend, const TrainerOptions& options = {});
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  Device device() const { return backend_->device(); }
  Architecture architecture() const { return network_->architecture(); }
  const ParamLayout& layout() const { return network_->layout(); }
  // Training steps taken so far (including the model's, when it was trained before).
  long steps() const { return step_; }
  // Adam's t (restarts at 0 when the model came without its Adam state).
  long adam_step() const { return adam_t_; }
  const TrainerOptions& options() const { return options_; }
  // Training steps that ran from a recording (record_steps); 0 when it is off or failed.
  long recorded_steps() const { return replays_; }

  // One training step on inputs, targets [n,1,h,w]; returns the batch-mean PSNR loss of the
  // forward (downloading that float is the step's one host synchronization).
  float train_step(const Tensor& inputs, const Tensor& targets);
  // The same step without reading the loss: nothing waits for the device. The loss stays on the
  // device until last_loss().
  void train_step_async(const Tensor& inputs, const Tensor& targets);
  // The loss of the last step (waits for it).
  float last_loss();

  // Forward, loss and backward without the Adam update (tests and gradient checks); returns the
  // loss. The gradients are then in gradients().
  float compute_gradients(const Tensor& inputs, const Tensor& targets);
  // Flat gradient array [layout().total_floats()] of the last backward (host copy).
  std::vector<float> gradients() const;

  // Inference (no dropout): inputs [n,1,h,w] -> outputs [n,1,h,w], on the inputs' device.
  Tensor predict(const Tensor& inputs);
  // The same on raw host memory: in, out [n,1,h,w] floats.
  void predict(const float* in, float* out, int n, int h, int w);

  // Current weights (host, flat) and a Model with weights, Adam state and step count brought up
  // to date (architecture, dropout and metadata kept from the model the trainer was built from).
  std::vector<float> weights() const;
  Model export_model() const;
  // Writes weights, Adam state and step count into `model` (whose architecture must match).
  void export_to(Model& model) const;

 private:
  void prepare(int n, int h, int w, bool training);
  void stage(const Tensor& t, float* dst, const char* what);
  // Checks the batch, prepares the buffers for it and copies it in.
  void stage_batch(const Tensor& inputs, const Tensor& targets);
  // Forward with dropout `key`, the PSNR loss and the backward on the staged batch.
  void loss_and_gradients(const DropoutKey& key);
  void forward_backward(const Tensor& inputs, const Tensor& targets);
  // record_steps: the step on the staged batch from the recording (made when the buffers are
  // new), its ops reading the step's dropout offset and Adam scalars from step_args_, uploaded
  // first. False (and record_steps off from then on) when the backend could not record.
  bool replay_recorded_step();

  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Network> network_;
  std::unique_ptr<Parameters> params_;
  Model model_;  // the model as given, without weights (architecture, dropout, metadata)
  TrainerOptions options_;
  long step_ = 0;    // training steps, keys the dropout masks
  long adam_t_ = 0;  // Adam's t
  Arena net_arena_;  // the network's activations and gradients
  Arena io_arena_;   // the trainer's batch, target, output-gradient and loss buffers
  float* x_ = nullptr;     // [n,1,h,w]
  float* t_ = nullptr;     // [n,1,h,w] (training only)
  float* dy_ = nullptr;    // [n,1,h,w] (training only)
  float* loss_ = nullptr;  // [1]
  int io_n_ = 0, io_h_ = 0, io_w_ = 0;
  bool io_training_ = false;
  size_t io_layouts_ = 0;  // times io_arena_ was laid out

  // record_steps: the per-step values in backend memory, and the recording with what it was
  // recorded against (any change of buffers or workspace means a new recording).
  struct StepArgs {
    uint64_t dropout_offset;  // (step + 1) * DropoutKey::kDropoutLayerStride
    AdamStepScalars adam;     // adam_step_scalars(adam, t + 1)
  };
  struct RecordedLayout {
    size_t network, io, workspace;
    bool operator==(const RecordedLayout& o) const {
      return network == o.network && io == o.io && workspace == o.workspace;
    }
  };
  DeviceBuffer step_args_;  // one StepArgs
  std::unique_ptr<RecordedWork> recorded_step_;
  RecordedLayout recorded_layout_{};
  long replays_ = 0;
};

}  // namespace isonet
