// test_app_restore_memory.cpp: restore's memory accounting (apps/restore_memory.h) against the
// bytes really allocated: a call's estimate equals what Network::plan reserves and what a Trainer
// allocates, at batch 1 and at a batch where the CPU conv's Auto picks the frequency-domain path
// for some layer (whose weight-spectra workspace a per-pixel fit cannot follow), over several
// calls (each buffer only grows), also with the convs forced to FFT (--conv fft), and the plan
// search keeps the held total within the budget with the largest call that fits.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "apps/restore_memory.h"
#include "kernels/conv2d_fft.h"
#include "kernels/error.h"
#include "nn/arena.h"
#include "nn/backend.h"
#include "nn/model.h"
#include "nn/parameters.h"
#include "nn/trainer.h"
#include "test_util.h"

using namespace isonet;
using namespace isonet::app;

namespace {

const Architecture kArchs[] = {Architecture::IsoNet1, Architecture::IsoNet2};

struct CallShape {
  int n, h, w;
};

// The conv shapes of one inference call [n,1,h,w]: channels and kernel sizes from the network's
// own weight tensors [c_out,c_in,k,k], in layer order; the spatial scale of each layer from the
// architecture tables (isonet1.h: all full size; isonet2.h: enc1, enc2/2, mid/4, dec2/2, dec1, out).
std::vector<Conv2dShape> conv_shapes(Architecture arch, const CallShape& c) {
  const std::vector<int> scale = arch == Architecture::IsoNet1 ? std::vector<int>{1, 1, 1, 1}
                                                               : std::vector<int>{1, 2, 4, 2, 1, 1};
  const auto net = make_network(arch);
  const ParamLayout& layout = net->layout();
  std::vector<Conv2dShape> shapes;
  for (size_t i = 0; i < layout.size(); ++i) {
    const std::vector<int>& d = layout.spec(i).dims;
    if (d.size() != 4) continue;  // biases
    const int s = scale.at(shapes.size());
    shapes.push_back({c.n, d[1], d[0], c.h / s, c.w / s, d[2]});
  }
  REQUIRE(shapes.size() == scale.size());
  return shapes;
}

bool some_layer_fft(Architecture arch, const CallShape& c) {
  for (const Conv2dShape& s : conv_shapes(arch, c))
    if (cpu::conv2d_fft_preferred(s)) return true;
  return false;
}

// The smallest call (in pixels) of a grid of batches and sizes where Auto runs some layer of
// `arch` in the frequency domain; n = 0 when none does.
CallShape first_fft_call(Architecture arch) {
  for (int side : {32, 64, 128, 256})
    for (int n : {1, 2, 4, 8, 16})
      if (some_layer_fft(arch, {n, side, side})) return {n, side, side};
  return {0, 0, 0};
}

// The calls checked per architecture: batch 1, and the FFT call when the cost model has one.
std::vector<CallShape> calls_to_check(Architecture arch) {
  std::vector<CallShape> calls{{1, 64, 96}};
  const CallShape fft = first_fft_call(arch);
  if (fft.n) calls.push_back(fft);
  else
    MESSAGE(architecture_name(arch), ": no call in the grid runs a layer by FFT (the cost model changed?)");
  return calls;
}

}  // namespace

TEST_CASE("restore memory: some call of the grid runs a layer by FFT (so the next cases cover it)") {
  // The FFT path exists for IsoNet-2's wide 7x7 layers: if neither network ever picks it in this
  // grid the cases below would only test the direct path, so say so.
  CHECK((first_fft_call(Architecture::IsoNet1).n > 0 || first_fft_call(Architecture::IsoNet2).n > 0));
}

TEST_CASE("restore memory: a call's estimate equals what Network::plan reserves") {
  for (Architecture arch : kArchs)
    for (const CallShape& c : calls_to_check(arch)) {
      const std::string name = architecture_name(arch);
      CAPTURE(name);
      CAPTURE(c.n);
      CAPTURE(c.h);
      CAPTURE(c.w);
      const bool fft = some_layer_fft(arch, c);  // (evaluated here: CAPTURE is lazy)
      CAPTURE(fft);
      InferenceMemory mem(arch, Device::CPU);
      const RestoreMemory est = mem.call(c.n, c.h, c.w);
      auto backend = make_backend(Device::CPU);
      auto net = make_network(arch);
      Arena arena;
      net->plan(*backend, arena, c.n, c.h, c.w, /*training=*/false);
      CHECK(est.activations == arena.capacity_bytes());
      CHECK(est.workspace == backend->workspace_floats() * sizeof(float));
      // The workspace is the largest layer's, whichever algorithm Auto picked for it.
      size_t ws = 0;
      for (const Conv2dShape& s : conv_shapes(arch, c)) ws = std::max(ws, cpu::conv2d_workspace_floats(s));
      CHECK(est.workspace == ws * sizeof(float));
    }
}

TEST_CASE("restore memory: measuring a planned network makes the next plan() lay out again") {
  // plan_memory runs the carve pass (null placeholder pointers): a network planned before must not
  // keep those for the same sizes, or its forward would write through them.
  auto backend = make_backend(Device::CPU);
  auto net = make_network(Architecture::IsoNet2);
  Parameters params(*backend, net->layout());
  params.upload_params(init_parameters(net->layout(), 5));
  Arena arena;
  const int n = 2, h = 32, w = 48;
  net->plan(*backend, arena, n, h, w, /*training=*/false);
  net->plan_memory(Device::CPU, n, h, w, /*training=*/false);
  CHECK_THROWS_AS(net->forward(*backend, params, nullptr, nullptr), Error);  // plan forgotten
  net->plan(*backend, arena, n, h, w, /*training=*/false);
  const std::vector<float> x = test::random_vector(size_t(n) * h * w, 6, 0.f, 1.f);
  DeviceBuffer xd(*backend, x.size() * sizeof(float));
  backend->upload(xd.get(), x.data(), x.size() * sizeof(float));
  const float* y = net->forward(*backend, params, xd.floats(), nullptr);
  REQUIRE(y != nullptr);
  for (size_t i = 0; i < x.size(); ++i) REQUIRE(std::isfinite(y[i]));
}

TEST_CASE("restore memory: a call's estimate equals the bytes a Trainer allocates, also over several calls") {
  for (Architecture arch : kArchs) {
    const std::string name = architecture_name(arch);
    CAPTURE(name);
    const std::vector<CallShape> calls = calls_to_check(arch);
    InferenceMemory mem(arch, Device::CPU);
    const Model model = Model::create(arch, 3);
    const size_t before = device_bytes_in_use(Device::CPU);
    Trainer trainer(model, Device::CPU);
    RestoreMemory held;
    for (const CallShape& c : calls) {
      CAPTURE(c.n);
      CAPTURE(c.h);
      CAPTURE(c.w);
      const std::vector<float> in = test::random_vector(size_t(c.n) * c.h * c.w, 11, 0.f, 1.f);
      std::vector<float> out(in.size());
      trainer.predict(in.data(), out.data(), c.n, c.h, c.w);
      // One call alone, and the calls so far (the trainer's buffers only grow).
      const RestoreMemory one = mem.call(c.n, c.h, c.w);
      held = held.max_with(one);
      CHECK(device_bytes_in_use(Device::CPU) - before == held.device_bytes());
      CHECK(one.slices + one.tiles == 0);
    }
  }
  // Back to batch 1 after a larger call keeps the larger buffers: the componentwise max, not the last call.
  InferenceMemory mem(Architecture::IsoNet2, Device::CPU);
  CHECK(mem.call(4, 64, 64).max_with(mem.call(1, 32, 32)).device_bytes() == mem.call(4, 64, 64).device_bytes());
}

TEST_CASE("restore memory: with the convs forced to FFT (restore --conv fft) the estimate still equals the allocation") {
  TrainerOptions fft;
  fft.conv.algo = Conv2dAlgo::Fft;
  for (Architecture arch : kArchs) {
    const std::string name = architecture_name(arch);
    CAPTURE(name);
    InferenceMemory mem(arch, Device::CPU, ConvSettings{Conv2dAlgo::Fft}), auto_mem(arch, Device::CPU);
    const Model model = Model::create(arch, 3);
    const size_t before = device_bytes_in_use(Device::CPU);
    Trainer trainer(model, Device::CPU, fft);
    RestoreMemory held;
    for (const CallShape& c : {CallShape{1, 32, 32}, CallShape{3, 24, 40}, CallShape{1, 16, 16}}) {
      CAPTURE(c.n);
      CAPTURE(c.h);
      CAPTURE(c.w);
      const std::vector<float> in = test::random_vector(size_t(c.n) * c.h * c.w, 13, 0.f, 1.f);
      std::vector<float> out(in.size());
      trainer.predict(in.data(), out.data(), c.n, c.h, c.w);
      held = held.max_with(mem.call(c.n, c.h, c.w));
      CHECK(device_bytes_in_use(Device::CPU) - before == held.device_bytes());
    }
    // The setting reaches the estimate: at batch 1 of 32x32 Auto keeps every layer direct and the
    // forced FFT's kernel spectra need more workspace (at other sizes either may be larger).
    CHECK(mem.call(1, 32, 32).workspace > auto_mem.call(1, 32, 32).workspace);
  }
}

TEST_CASE("restore memory: plan_memory prices every call of a plan and restore's host buffers") {
  InferenceMemory mem(Architecture::IsoNet2, Device::CPU);
  const int Hp = 56, Wp = 160, margin = 48;
  // 5 slices in batches of 2: calls of 2, 2 and 1; host: 2 slices in and out.
  const RestoreMemory b = plan_memory(mem, {}, {2, 0, 0}, 5, Hp, Wp, margin);
  RestoreMemory want = mem.call(2, Hp, Wp).max_with(mem.call(1, Hp, Wp));
  want.slices = 2 * 2 * size_t(Hp) * Wp * sizeof(float);
  CHECK(b.total() == want.total());
  // Strips of 56 rows with 28-column cores at 0, 28, ..., 140: the 48-pixel margins are clipped
  // at both ends, so the regions are 76, 104, 124, 124, 96 and 68 columns wide.
  const std::vector<TileSpan> spans = tile_spans(Wp, 28, margin);
  std::vector<int> widths;
  for (const TileSpan& s : spans) widths.push_back(s.r1 - s.r0);
  CHECK(widths == std::vector<int>{76, 104, 124, 124, 96, 68});
  CHECK(spans.back().a0 == 140);
  CHECK(spans.back().a1 == 160);
  CHECK(spans[2].r0 == 8);
  const RestoreMemory t = plan_memory(mem, {}, {1, Hp, 28}, 5, Hp, Wp, margin);
  RestoreMemory tw;
  for (int w : {76, 104, 124, 96, 68}) tw = tw.max_with(mem.call(1, Hp, w));
  tw.slices = 2 * size_t(Hp) * Wp * sizeof(float);
  tw.tiles = 2 * size_t(Hp) * 124 * sizeof(float);
  CHECK(t.total() == tw.total());
  // What earlier calls hold stays held.
  RestoreMemory big;
  big.workspace = size_t(1) << 30;
  CHECK(plan_memory(mem, big, {2, 0, 0}, 5, Hp, Wp, margin).workspace == big.workspace);
}

TEST_CASE("restore memory: the plan is the largest call that keeps the held total within the budget") {
  for (Architecture arch : kArchs) {
    const std::string name = architecture_name(arch);
    CAPTURE(name);
    InferenceMemory mem(arch, Device::CPU);
    const int count = 20, Hp = 64, Wp = 128, margin = 48, max_batch = 16;
    // Budgets from "8 slices per call" down to "tiles only", each exactly a candidate's total.
    std::vector<size_t> budgets;
    for (int nb : {8, 3, 1}) budgets.push_back(plan_memory(mem, {}, {nb, 0, 0}, count, Hp, Wp, margin).total());
    budgets.push_back(plan_memory(mem, {}, {1, Hp, 40}, count, Hp, Wp, margin).total());
    budgets.push_back(plan_memory(mem, {}, {1, 8, 8}, count, Hp, Wp, margin).total());
    for (size_t budget : budgets) {
      CAPTURE(budget);
      const SlicePlan p = plan_slices(mem, {}, count, Hp, Wp, max_batch, budget, margin);
      CAPTURE(p.batch);
      CAPTURE(p.th);
      CAPTURE(p.tw);
      CHECK(plan_memory(mem, {}, p, count, Hp, Wp, margin).total() <= budget);
      // The next larger candidate of the same kind does not fit.
      if (p.th == 0 && p.batch < max_batch)
        CHECK(plan_memory(mem, {}, {p.batch + 1, 0, 0}, count, Hp, Wp, margin).total() > budget);
      if (p.th == Hp) CHECK(plan_memory(mem, {}, {1, Hp, p.tw + 4}, count, Hp, Wp, margin).total() > budget);
      if (p.th && p.th < Hp && p.th + 4 < std::min(Hp, Wp))
        CHECK(plan_memory(mem, {}, {1, p.th + 4, p.th + 4}, count, Hp, Wp, margin).total() > budget);
    }
    // The three budgets made from batches give those batches (more slices need more memory here).
    CHECK(plan_slices(mem, {}, count, Hp, Wp, max_batch, budgets[0], margin).batch == 8);
    CHECK(plan_slices(mem, {}, count, Hp, Wp, max_batch, budgets[2], margin).batch == 1);
    CHECK(plan_slices(mem, {}, count, Hp, Wp, max_batch, budgets[2] - 1, margin).th > 0);
    // Never more slices per call than there are slices.
    CHECK(plan_slices(mem, {}, 3, Hp, Wp, max_batch, size_t(1) << 40, margin).batch == 3);
    // Too small for the smallest tile: a clear error with what it needs.
    const std::string msg = test::error_of([&] { plan_slices(mem, {}, count, Hp, Wp, max_batch, 1 << 20, margin); });
    CHECK(test::contains(msg, "--max-memory 1 MB is too small"));
    CHECK(test::contains(msg, "48-pixel context"));
    // The smallest budget it names is enough for the smallest tile.
    const size_t at = msg.find("give --max-memory ");
    REQUIRE(at != std::string::npos);
    const size_t named = std::stoul(msg.substr(at + 18)) << 20;
    CHECK(plan_slices(mem, {}, count, Hp, Wp, max_batch, named, margin).th > 0);
  }
}

TEST_CASE("restore memory: the CUDA estimate needs no GPU (a CUDA build) and the layout is device-independent") {
#if !ISONET_HAS_CUDA
  CHECK_THROWS_AS(InferenceMemory(Architecture::IsoNet2, Device::CUDA).call(1, 64, 64), Error);
#else
  InferenceMemory gpu(Architecture::IsoNet2, Device::CUDA), cpu(Architecture::IsoNet2, Device::CPU);
  const RestoreMemory g = gpu.call(4, 64, 128), c = cpu.call(4, 64, 128);
  CHECK(g.activations == c.activations);
  CHECK(g.io == c.io);
  CHECK(g.params == c.params);
  size_t ws = 0;
  for (const Conv2dShape& s : conv_shapes(Architecture::IsoNet2, {4, 64, 128}))
    ws = std::max(ws, gpu::conv2d_workspace_floats(s));
  CHECK(g.workspace == ws * sizeof(float));
#endif
}
