// network.h: the interface of a network written once against Backend (so the same code trains on
// the CPU and on CUDA), the conv layer both IsoNets are built from, and the architecture names.
// A network holds no weights (they live in Parameters) but does hold the pointers of its
// activation buffers, laid out in an Arena by plan() for one batch size and patch size.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "nn/arena.h"
#include "nn/backend.h"
#include "nn/parameters.h"

namespace isonet {

enum class Architecture { IsoNet1, IsoNet2 };

// "isonet1" / "isonet2" (the names used in model files and on the command line).
const char* architecture_name(Architecture a);
// Parses an architecture name; throws isonet::Error listing the known ones.
Architecture parse_architecture(const std::string& name);

// "auto" / "direct" / "fft": the conv algorithm names of the command line and the benchmarks.
const char* conv_algo_name(Conv2dAlgo a);
// Parses a conv algorithm name; throws isonet::Error naming `what` (e.g. "--conv") and the known ones.
Conv2dAlgo parse_conv_algo(const std::string& name, const char* what);
// "fp32" / "tf32": the conv math names of the command line and the benchmarks.
const char* conv_math_name(Conv2dMath m);
// Parses a conv math name; throws isonet::Error naming `what` (e.g. "--math") and the known ones.
Conv2dMath parse_conv_math(const std::string& name, const char* what);

// How a network's convolutions run (kernels/conv2d.h): a speed/precision setting of the Trainer,
// not part of the model. algo: which algorithm (Auto: each device's own choice). math: the
// arithmetic of the CUDA direct kernels (Tf32: tensor cores, ~1e-3 relative rounding); the CPU
// ignores it and computes in fp32.
struct ConvSettings {
  Conv2dAlgo algo = Conv2dAlgo::Auto;
  Conv2dMath math = Conv2dMath::Fp32;
};

// Dropout during a training forward. Layer l of step `step` draws its mask from
// DropoutParams{p, seed, step * kDropoutLayerStride + l}: a fresh, reproducible mask per step and
// per layer, identical on CPU and GPU.
// With step_offset set (backend memory holding step' * kDropoutLayerStride, read when the ops run),
// the masks are those of step + step': how a recorded training step replays later steps.
struct DropoutKey {
  static constexpr uint64_t kDropoutLayerStride = 16;
  float p = 0.f;
  uint64_t seed = 0;
  uint64_t step = 0;
  const uint64_t* step_offset = nullptr;
  DropoutParams for_layer(int layer) const {
    return {p, seed, step * kDropoutLayerStride + uint64_t(layer), step_offset};
  }
};

// conv (stride 1, 'same' zero padding) -> optional ReLU (fused) -> optional dropout (training).
struct ConvLayer {
  int weight = -1;          // index of the weight tensor in the ParamLayout; the bias is weight + 1
  int c_in = 1, c_out = 1, k = 1;
  bool relu = false;
  int dropout_layer = -1;   // >= 0: dropout after the activation, with this layer salt
  ConvSettings conv;        // the network's (Network::conv), with the algorithm this layer runs

  // Every op of the layer and the workspace sizing go through this shape, so they agree on the
  // algorithm and the math.
  Conv2dShape shape(int n, int h, int w) const { return {n, c_in, c_out, h, w, k, conv.algo, conv.math}; }

  // x [n,c_in,h,w] -> y [n,c_out,h,w]; dropout == nullptr: inference (no dropout).
  void forward(Backend& be, const Parameters& p, int n, int h, int w, const float* x, float* y,
               const DropoutKey* dropout) const;
  // dy [n,c_out,h,w] (the gradient at y; overwritten with the pre-activation gradient), y and x the
  // forward's buffers -> parameter gradients (overwritten) and dx [n,c_in,h,w] (skipped if null).
  void backward(Backend& be, Parameters& p, int n, int h, int w, const float* x, const float* y, float* dy,
                float* dx, const DropoutKey* dropout) const;
};

class Network {
 public:
  virtual ~Network() = default;
  virtual Architecture architecture() const = 0;
  const ParamLayout& layout() const { return layout_; }
  // How every conv layer runs (fixed at construction, see make_network).
  const ConvSettings& conv() const { return conv_settings_; }

  // Throws isonet::Error when a patch [h,w] cannot go through the network.
  virtual void check_input_size(int h, int w) const;
  // Lays out the buffers for batches [n,1,h,w] in `arena` and reserves the backend's workspace;
  // training adds the gradient buffers the backward needs. An arena serves one network. Repeated
  // calls with the same sizes are free (a training plan also serves inference).
  void plan(Backend& be, Arena& arena, int n, int h, int w, bool training);
  // The memory plan() lays out for [n,1,h,w] on `device`, computed without allocating and without
  // a backend: the bytes of the arena's layout (what a fresh arena allocates; an arena that only
  // grows holds the largest layout it was given) and the floats of op workspace reserved. Measuring
  // runs the carve pass, which overwrites the buffer pointers: a planned network forgets its plan
  // (the next plan() lays out again).
  struct PlanMemory {
    size_t arena_bytes = 0;
    size_t workspace_floats = 0;
  };
  PlanMemory plan_memory(Device device, int n, int h, int w, bool training);
  int batch() const { return n_; }
  int height() const { return h_; }
  int width() const { return w_; }
  // Times plan() laid the buffers out: buffer pointers held from before a change are stale.
  size_t layouts() const { return layouts_; }

  // x [n,1,h,w] (backend memory) -> returns y [n,1,h,w] (arena memory, valid until the next
  // forward or plan). dropout == nullptr: inference. Needs plan() with the same sizes first.
  virtual const float* forward(Backend& be, const Parameters& p, const float* x, const DropoutKey* dropout) = 0;
  // After a training forward on the same x: dy [n,1,h,w] (dL/dy, overwritten as scratch) ->
  // overwrites every gradient in p (each parameter has a single use, so nothing accumulates
  // across tensors and the gradients need no zeroing per step).
  virtual void backward(Backend& be, Parameters& p, const float* x, float* dy) = 0;

 protected:
  explicit Network(ConvSettings conv) : conv_settings_(conv) {}
  // Derived constructors build their layers with add_conv and hand over the specs.
  void set_layout(std::vector<ParamSpec> specs) { layout_ = ParamLayout(std::move(specs)); }
  // Appends "<name>.weight" [c_out,c_in,k,k] and "<name>.bias" [c_out] to specs; returns the layer,
  // which runs with conv() (its algorithm Direct for a 1x1 layer when conv().algo is Fft).
  ConvLayer add_conv(std::vector<ParamSpec>& specs, const std::string& name, int c_in, int c_out, int k, bool relu,
                     int dropout_layer = -1, ParamInit weight_init = ParamInit::GlorotUniform) const;
  // Carves the buffers for [n,1,h,w] (called twice by Arena::layout; see arena.h); the gradient
  // buffers only when training.
  virtual void carve(Arena& arena, int n, int h, int w, bool training) = 0;
  // The op workspace the forward and backward need for [n,1,h,w] on `device`.
  virtual size_t workspace_floats(Device device, int n, int h, int w) const = 0;
  // Forward implementations call this first: checks plan() happened and remembers the dropout key
  // of a training forward for the backward.
  void begin_forward(const DropoutKey* dropout);
  // Backward implementations call this first: the key of the training forward it follows
  // (throws isonet::Error when the last forward was an inference one).
  const DropoutKey& begin_backward() const;

  int n_ = 0, h_ = 0, w_ = 0;

 private:
  // Throws isonet::Error when [n,1,h,w] cannot be planned.
  void check_plan(int n, int h, int w) const;

  ParamLayout layout_;
  ConvSettings conv_settings_;
  bool planned_training_ = false;
  bool have_training_forward_ = false;
  DropoutKey key_{};
  const Arena* arena_ = nullptr;     // where the buffers were last carved
  size_t arena_allocations_ = 0;    // and that arena's allocation count then
  size_t layouts_ = 0;
};

// The network of `arch` (dropout layers take their probability from the DropoutKey of a forward),
// its conv layers running with `conv`: conv.algo Auto is each device's own choice (kernels/conv2d.h),
// Direct/Fft force one algorithm for every layer, forward and backward, on either device (Fft
// leaves 1x1 layers direct, where transforms only add work); conv.math goes to every layer as is.
std::unique_ptr<Network> make_network(Architecture arch, ConvSettings conv = {});

}  // namespace isonet
