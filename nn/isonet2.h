// isonet2.h: IsoNet-2 (Weigert et al. 2017), a small U-Net that learns the residual:
//   C16,7x7 - M2 - C32,7x7 - M2 - C64,7x7 - U2 - C32,7x7 - U2 - C16,7x7 - C1,1x1
// with symmetric skip connections, as implemented here (input x [n,1,h,w], h and w multiples of 4):
//   e1 = drop(relu(enc1(x)))               [n,16,h,w]      enc1: 1->16, 7x7
//   p1 = maxpool2(e1)                      [n,16,h/2,w/2]
//   e2 = drop(relu(enc2(p1)))              [n,32,h/2,w/2]  enc2: 16->32, 7x7
//   p2 = maxpool2(e2)                      [n,32,h/4,w/4]
//   m  = drop(relu(mid(p2)))               [n,64,h/4,w/4]  mid: 32->64, 7x7
//   c1 = concat(up2(m), e2)                [n,96,h/2,w/2]  (upsampled first, skip second)
//   d2 = drop(relu(dec2(c1)))              [n,32,h/2,w/2]  dec2: 96->32, 7x7
//   c2 = concat(up2(d2), e1)               [n,48,h,w]
//   d1 = drop(relu(dec1(c2)))              [n,16,h,w]      dec1: 48->16, 7x7
//   y  = x + out(d1)                       [n,1,h,w]       out: 16->1, 1x1, no activation
// drop() is 20% dropout after every 7x7 conv's ReLU, in training only (dropout salts 0..4 in the
// order above); the skip connections carry the dropped features, as in CSBDeep's U-Net blocks.
// Backward: the gradients of e1 and e2, each used by a pool and a skip concat, are summed with
// add_accumulate. The input x needs no gradient, so enc1 skips its data backward and the residual
// branch's gradient (dL/dx) is never formed.
#pragma once
#include "nn/network.h"

namespace isonet {

class IsoNet2 final : public Network {
 public:
  explicit IsoNet2(ConvSettings conv = {});
  Architecture architecture() const override { return Architecture::IsoNet2; }
  void check_input_size(int h, int w) const override;
  const float* forward(Backend& be, const Parameters& p, const float* x, const DropoutKey* dropout) override;
  void backward(Backend& be, Parameters& p, const float* x, float* dy) override;

 protected:
  void carve(Arena& arena, int n, int h, int w, bool training) override;
  size_t workspace_floats(Device device, int n, int h, int w) const override;

 private:
  ConvLayer enc1_, enc2_, mid_, dec2_, dec1_, out_;
  // Forward buffers (shapes in the table above); u1 = up2(m) [n,64,h/2,w/2], u2 = up2(d2) [n,32,h,w],
  // r = out(d1) [n,1,h,w]; argmax1/2 have the shapes of p1/p2.
  float *e1_ = nullptr, *p1_ = nullptr, *e2_ = nullptr, *p2_ = nullptr, *m_ = nullptr, *u1_ = nullptr,
        *c1_ = nullptr, *d2_ = nullptr, *u2_ = nullptr, *c2_ = nullptr, *d1_ = nullptr, *y_ = nullptr;
  int32_t *argmax1_ = nullptr, *argmax2_ = nullptr;
  // Gradient buffers, named after the tensor they are the gradient of (same shapes); fork_ is
  // scratch for the pool branch's share at a fork ([n,16,h,w], the larger of the two forks).
  float *gd1_ = nullptr, *gc2_ = nullptr, *gu2_ = nullptr, *ge1_ = nullptr, *gd2_ = nullptr, *gc1_ = nullptr,
        *gu1_ = nullptr, *ge2_ = nullptr, *gm_ = nullptr, *gp2_ = nullptr, *gp1_ = nullptr, *fork_ = nullptr;
};

}  // namespace isonet
