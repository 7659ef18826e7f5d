// network.cpp: architecture names, the conv layer, and the shared parts of Network.
#include "nn/network.h"

#include "kernels/error.h"
#include "nn/isonet1.h"
#include "nn/isonet2.h"

namespace isonet {

const char* architecture_name(Architecture a) { return a == Architecture::IsoNet1 ? "isonet1" : "isonet2"; }

Architecture parse_architecture(const std::string& name) {
  if (name == "isonet1") return Architecture::IsoNet1;
  if (name == "isonet2") return Architecture::IsoNet2;
  fail("unknown architecture '", name, "' (known: isonet1, isonet2)");
}

const char* conv_algo_name(Conv2dAlgo a) {
  switch (a) {
    case Conv2dAlgo::Auto: return "auto";
    case Conv2dAlgo::Direct: return "direct";
    case Conv2dAlgo::Fft: return "fft";
  }
  return "?";
}

Conv2dAlgo parse_conv_algo(const std::string& name, const char* what) {
  for (Conv2dAlgo a : {Conv2dAlgo::Auto, Conv2dAlgo::Direct, Conv2dAlgo::Fft})
    if (name == conv_algo_name(a)) return a;
  fail(what, ": unknown conv algorithm '", name, "' (known: auto, direct, fft)");
}

const char* conv_math_name(Conv2dMath m) {
  switch (m) {
    case Conv2dMath::Fp32: return "fp32";
    case Conv2dMath::Tf32: return "tf32";
  }
  return "?";
}

Conv2dMath parse_conv_math(const std::string& name, const char* what) {
  for (Conv2dMath m : {Conv2dMath::Fp32, Conv2dMath::Tf32})
    if (name == conv_math_name(m)) return m;
  fail(what, ": unknown conv math '", name, "' (known: fp32, tf32)");
}

std::unique_ptr<Network> make_network(Architecture arch, ConvSettings conv) {
  if (arch == Architecture::IsoNet1) return std::make_unique<IsoNet1>(conv);
  return std::make_unique<IsoNet2>(conv);
}

ConvLayer Network::add_conv(std::vector<ParamSpec>& specs, const std::string& name, int c_in, int c_out, int k,
                            bool relu, int dropout_layer, ParamInit weight_init) const {
  ConvLayer l;
  // A 1x1 conv is one GEMM per image: the frequency domain only adds transforms, so a forced Fft
  // leaves it direct (as the CPU's Auto does).
  l.conv = conv_settings_;
  if (conv_settings_.algo == Conv2dAlgo::Fft && k == 1) l.conv.algo = Conv2dAlgo::Direct;
  l.weight = static_cast<int>(specs.size());
  l.c_in = c_in;
  l.c_out = c_out;
  l.k = k;
  l.relu = relu;
  l.dropout_layer = dropout_layer;
  specs.push_back({name + ".weight", {c_out, c_in, k, k}, c_in * k * k, c_out * k * k, weight_init});
  specs.push_back({name + ".bias", {c_out}, 1, 1, ParamInit::Zero});
  return l;
}

void ConvLayer::forward(Backend& be, const Parameters& p, int n, int h, int w, const float* x, float* y,
                        const DropoutKey* dropout) const {
  be.conv2d_forward(shape(n, h, w), x, p.param(weight), p.param(weight + 1), y, relu);
  if (dropout && dropout_layer >= 0 && dropout->p > 0.f)
    be.dropout_forward(dropout->for_layer(dropout_layer), y, y, size_t(n) * c_out * h * w);
}

void ConvLayer::backward(Backend& be, Parameters& p, int n, int h, int w, const float* x, const float* y,
                         float* dy, float* dx, const DropoutKey* dropout) const {
  const size_t count = size_t(n) * c_out * h * w;
  // Dropout ran in place on the ReLU output, so y > 0 still marks the active units wherever an
  // element was kept; where it was dropped the gradient is already 0 after dropout_backward.
  if (dropout && dropout_layer >= 0 && dropout->p > 0.f)
    be.dropout_backward(dropout->for_layer(dropout_layer), dy, dy, count);
  if (relu) be.relu_backward(dy, y, dy, count);
  const Conv2dShape s = shape(n, h, w);
  be.conv2d_backward_weights(s, x, dy, p.grad(weight), p.grad(weight + 1));
  if (dx) be.conv2d_backward_data(s, dy, p.param(weight), dx);
}

void Network::check_input_size(int h, int w) const {
  ISONET_CHECK(h >= 1 && w >= 1, architecture_name(architecture()), ": input size must be positive, got ", h, "x",
               w);
}

void Network::check_plan(int n, int h, int w) const {
  ISONET_CHECK(n >= 1, architecture_name(architecture()), ": batch size must be positive, got ", n);
  check_input_size(h, w);
}

Network::PlanMemory Network::plan_memory(Device device, int n, int h, int w, bool training) {
  check_plan(n, h, w);
  PlanMemory m;
  m.workspace_floats = workspace_floats(device, n, h, w);
  m.arena_bytes = Arena::measure([&](Arena& a) { carve(a, n, h, w, training); });
  // The carve pass left placeholder pointers: forget the plan so that the next plan() carves.
  arena_ = nullptr;
  n_ = h_ = w_ = 0;
  planned_training_ = have_training_forward_ = false;
  return m;
}

void Network::plan(Backend& be, Arena& arena, int n, int h, int w, bool training) {
  check_plan(n, h, w);
  if (n == n_ && h == h_ && w == w_ && (planned_training_ || !training) && arena_ == &arena &&
      arena.allocations() == arena_allocations_)
    return;
  be.reserve_workspace(workspace_floats(be.device(), n, h, w));
  arena.layout(be, [&](Arena& a) { carve(a, n, h, w, training); });
  ++layouts_;
  planned_training_ = training;
  n_ = n;
  h_ = h;
  w_ = w;
  arena_ = &arena;
  arena_allocations_ = arena.allocations();
  have_training_forward_ = false;
}

void Network::begin_forward(const DropoutKey* dropout) {
  ISONET_CHECK(arena_ != nullptr, architecture_name(architecture()), ": forward before plan()");
  have_training_forward_ = dropout != nullptr;
  if (dropout) key_ = *dropout;
}

const DropoutKey& Network::begin_backward() const {
  ISONET_CHECK(planned_training_, architecture_name(architecture()), ": backward needs plan(..., training=true)");
  ISONET_CHECK(have_training_forward_, architecture_name(architecture()),
               ": backward needs a training forward (with a DropoutKey) on the same batch first");
  return key_;
}

}  // namespace isonet
