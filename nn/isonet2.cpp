// isonet2.cpp: IsoNet-2 forward and backward (see isonet2.h for the architecture as implemented).
#include "nn/isonet2.h"

#include <algorithm>

#include "kernels/error.h"

namespace isonet {

IsoNet2::IsoNet2(ConvSettings conv) : Network(conv) {
  std::vector<ParamSpec> s;
  enc1_ = add_conv(s, "enc1", 1, 16, 7, true, 0);
  enc2_ = add_conv(s, "enc2", 16, 32, 7, true, 1);
  mid_ = add_conv(s, "mid", 32, 64, 7, true, 2);
  dec2_ = add_conv(s, "dec2", 64 + 32, 32, 7, true, 3);
  dec1_ = add_conv(s, "dec1", 32 + 16, 16, 7, true, 4);
  out_ = add_conv(s, "out", 16, 1, 1, false);
  set_layout(std::move(s));
}

void IsoNet2::check_input_size(int h, int w) const {
  Network::check_input_size(h, w);
  ISONET_CHECK(h % 4 == 0 && w % 4 == 0, "isonet2: patch height and width must be multiples of 4 (two 2x2 "
               "poolings and upsamplings), got ", h, "x", w);
}

void IsoNet2::carve(Arena& a, int n, int h, int w, bool training) {
  const size_t full = size_t(n) * h * w, half = full / 4, quarter = full / 16;  // per channel
  e1_ = a.floats(16 * full);
  p1_ = a.floats(16 * half);
  argmax1_ = a.ints(16 * half);
  e2_ = a.floats(32 * half);
  p2_ = a.floats(32 * quarter);
  argmax2_ = a.ints(32 * quarter);
  m_ = a.floats(64 * quarter);
  u1_ = a.floats(64 * half);
  c1_ = a.floats(96 * half);
  d2_ = a.floats(32 * half);
  u2_ = a.floats(32 * full);
  c2_ = a.floats(48 * full);
  d1_ = a.floats(16 * full);
  y_ = a.floats(full);
  if (!training) return;

  gd1_ = a.floats(16 * full);
  gc2_ = a.floats(48 * full);
  gu2_ = a.floats(32 * full);
  ge1_ = a.floats(16 * full);
  gd2_ = a.floats(32 * half);
  gc1_ = a.floats(96 * half);
  gu1_ = a.floats(64 * half);
  ge2_ = a.floats(32 * half);
  gm_ = a.floats(64 * quarter);
  gp2_ = a.floats(32 * quarter);
  gp1_ = a.floats(16 * half);
  fork_ = a.floats(16 * full);
}

size_t IsoNet2::workspace_floats(Device device, int n, int h, int w) const {
  size_t ws = 0;
  for (auto [layer, s] : {std::pair{&enc1_, 1}, {&enc2_, 2}, {&mid_, 4}, {&dec2_, 2}, {&dec1_, 1}, {&out_, 1}})
    ws = std::max(ws, conv2d_workspace_floats(device, layer->shape(n, h / s, w / s)));
  return ws;
}

const float* IsoNet2::forward(Backend& be, const Parameters& p, const float* x, const DropoutKey* dropout) {
  begin_forward(dropout);
  const int n = n_, h = h_, w = w_, h2 = h / 2, w2 = w / 2, h4 = h / 4, w4 = w / 4;
  enc1_.forward(be, p, n, h, w, x, e1_, dropout);
  be.maxpool2d_forward({n, 16, h, w}, e1_, p1_, argmax1_);
  enc2_.forward(be, p, n, h2, w2, p1_, e2_, dropout);
  be.maxpool2d_forward({n, 32, h2, w2}, e2_, p2_, argmax2_);
  mid_.forward(be, p, n, h4, w4, p2_, m_, dropout);
  be.upsample2d_forward({n, 64, h4, w4}, m_, u1_);
  be.concat_forward({n, 64, 32, h2, w2}, u1_, e2_, c1_);
  dec2_.forward(be, p, n, h2, w2, c1_, d2_, dropout);
  be.upsample2d_forward({n, 32, h2, w2}, d2_, u2_);
  be.concat_forward({n, 32, 16, h, w}, u2_, e1_, c2_);
  dec1_.forward(be, p, n, h, w, c2_, d1_, dropout);
  out_.forward(be, p, n, h, w, d1_, y_, dropout);
  be.add_forward(x, y_, y_, size_t(n) * h * w);  // the residual: y = x + out(d1)
  return y_;
}

void IsoNet2::backward(Backend& be, Parameters& p, const float* x, float* dy) {
  const DropoutKey& key = begin_backward();
  const int n = n_, h = h_, w = w_, h2 = h / 2, w2 = w / 2, h4 = h / 4, w4 = w / 4;
  // y = x + r: dL/dr = dy. out_ has no activation, so its "y" argument is unused; y_ stands in.
  out_.backward(be, p, n, h, w, d1_, y_, dy, gd1_, &key);
  dec1_.backward(be, p, n, h, w, c2_, d1_, gd1_, gc2_, &key);
  be.concat_backward({n, 32, 16, h, w}, gc2_, gu2_, ge1_);  // ge1 = skip share of dL/de1
  be.upsample2d_backward({n, 32, h2, w2}, gu2_, gd2_);
  dec2_.backward(be, p, n, h2, w2, c1_, d2_, gd2_, gc1_, &key);
  be.concat_backward({n, 64, 32, h2, w2}, gc1_, gu1_, ge2_);  // ge2 = skip share of dL/de2
  be.upsample2d_backward({n, 64, h4, w4}, gu1_, gm_);
  mid_.backward(be, p, n, h4, w4, p2_, m_, gm_, gp2_, &key);
  // Fork at e2: add the pool branch's share.
  be.maxpool2d_backward({n, 32, h2, w2}, gp2_, argmax2_, fork_);
  be.add_accumulate(fork_, ge2_, size_t(n) * 32 * h2 * w2);
  enc2_.backward(be, p, n, h2, w2, p1_, e2_, ge2_, gp1_, &key);
  // Fork at e1: add the pool branch's share.
  be.maxpool2d_backward({n, 16, h, w}, gp1_, argmax1_, fork_);
  be.add_accumulate(fork_, ge1_, size_t(n) * 16 * h * w);
  enc1_.backward(be, p, n, h, w, x, e1_, ge1_, nullptr, &key);
}

}  // namespace isonet
