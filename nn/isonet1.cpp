// isonet1.cpp: IsoNet-1 forward and backward (see isonet1.h for the architecture as implemented).
#include "nn/isonet1.h"

#include <algorithm>

namespace isonet {

namespace {
// Layer table: name, c_in, c_out, k; all with ReLU. Dropout salts 0 and 1 for conv1, conv2.
struct Row {
  const char* name;
  int c_in, c_out, k;
};
constexpr Row kLayers[4] = {{"conv1", 1, 64, 9}, {"conv2", 64, 32, 5}, {"conv3", 32, 1, 5}, {"conv4", 1, 1, 1}};
}  // namespace

IsoNet1::IsoNet1(ConvSettings conv) : Network(conv) {
  std::vector<ParamSpec> s;
  for (int l = 0; l < 4; ++l) {
    const Row& r = kLayers[l];
    conv_[l] = add_conv(s, r.name, r.c_in, r.c_out, r.k, /*relu=*/true, /*dropout_layer=*/l < 2 ? l : -1,
                        l == 3 ? ParamInit::GlorotUniformNonNegative : ParamInit::GlorotUniform);
  }
  set_layout(std::move(s));
}

void IsoNet1::carve(Arena& arena, int n, int h, int w, bool training) {
  for (int l = 0; l < 4; ++l) a_[l] = arena.floats(size_t(n) * conv_[l].c_out * h * w);
  if (!training) return;
  for (int l = 0; l < 3; ++l) g_[l] = arena.floats(size_t(n) * conv_[l].c_out * h * w);
}

size_t IsoNet1::workspace_floats(Device device, int n, int h, int w) const {
  size_t ws = 0;
  for (const ConvLayer& c : conv_) ws = std::max(ws, conv2d_workspace_floats(device, c.shape(n, h, w)));
  return ws;
}

const float* IsoNet1::forward(Backend& be, const Parameters& p, const float* x, const DropoutKey* dropout) {
  begin_forward(dropout);
  const float* in = x;
  for (int l = 0; l < 4; ++l) {
    conv_[l].forward(be, p, n_, h_, w_, in, a_[l], dropout);
    in = a_[l];
  }
  return a_[3];
}

void IsoNet1::backward(Backend& be, Parameters& p, const float* x, float* dy) {
  const DropoutKey& key = begin_backward();
  float* grad_out = dy;
  for (int l = 3; l >= 0; --l) {
    const float* in = l == 0 ? x : a_[l - 1];
    // The input image needs no gradient: the first layer skips its data backward.
    float* grad_in = l == 0 ? nullptr : g_[l - 1];
    conv_[l].backward(be, p, n_, h_, w_, in, a_[l], grad_out, grad_in, &key);
    grad_out = grad_in;
  }
}

}  // namespace isonet
