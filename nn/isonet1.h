// isonet1.h: IsoNet-1 (Weigert et al. 2017, after SRCNN): C64,9x9 - C32,5x5 - C1,5x5 - C1,1x1.
// The paper: "After each convolutional layer a rectifying activation function (ReLU) is applied."
// We read that literally: ReLU after all four convs, the last one included, so the output is
// non-negative (the data are percentile-normalized images). With a ReLU after a 1x1 conv from one
// non-negative channel and zero bias, a negative initial weight would make the whole network
// output 0 with zero gradient forever; that one scalar weight is therefore initialized with the
// absolute value of its Glorot draw (ParamInit::GlorotUniformNonNegative).
// Dropout ("a dropout of 20% throughout"): after the ReLU of the two feature layers conv1 and
// conv2, in training only; not after conv3/conv4, whose single channel is the image estimate.
// Input and output [n,1,h,w], any h, w >= 1 ('same' padding keeps the size).
#pragma once
#include "nn/network.h"

namespace isonet {

class IsoNet1 final : public Network {
 public:
  explicit IsoNet1(ConvSettings conv = {});
  Architecture architecture() const override { return Architecture::IsoNet1; }
  const float* forward(Backend& be, const Parameters& p, const float* x, const DropoutKey* dropout) override;
  void backward(Backend& be, Parameters& p, const float* x, float* dy) override;

 protected:
  void carve(Arena& arena, int n, int h, int w, bool training) override;
  size_t workspace_floats(Device device, int n, int h, int w) const override;

 private:
  ConvLayer conv_[4];
  // Activations a_[l] [n,conv_[l].c_out,h,w] (a_[3] is the output) and the gradients at the
  // inputs of layers 1..3, g_[l] = dL/da_[l] (same shapes; dL/da_[3] is the caller's dy).
  float* a_[4] = {};
  float* g_[3] = {};
};

}  // namespace isonet
