// restore_memory.cpp: the exact memory of restore's calls and the plan search (see restore_memory.h).
#include "apps/restore_memory.h"

#include <algorithm>
#include <cstdio>
#include <string>
#include <cmath>

#include "kernels/error.h"
#include "nn/arena.h"

namespace isonet::app {

RestoreMemory RestoreMemory::max_with(const RestoreMemory& o) const {
  RestoreMemory m;
  m.params = std::max(params, o.params);
  m.activations = std::max(activations, o.activations);
  m.io = std::max(io, o.io);
  m.workspace = std::max(workspace, o.workspace);
  m.slices = std::max(slices, o.slices);
  m.tiles = std::max(tiles, o.tiles);
  return m;
}

InferenceMemory::InferenceMemory(Architecture arch, Device device, ConvSettings conv)
    : net_(make_network(arch, conv)), device_(device) {
  // Parameters allocates four flat arrays: weights, gradients, Adam's m and v.
  params_ = 4 * net_->layout().total_floats() * sizeof(float);
}

RestoreMemory InferenceMemory::call(int n, int h, int w) {
  const Network::PlanMemory p = net_->plan_memory(device_, n, h, w, /*training=*/false);
  RestoreMemory m;
  m.params = params_;
  m.activations = p.arena_bytes;
  m.workspace = p.workspace_floats * sizeof(float);
  // Trainer::prepare's inference layout of its io arena: x [n,1,h,w], then the loss [1].
  m.io = Arena::measure([&](Arena& a) {
    a.floats(size_t(n) * h * w);
    a.floats(1);
  });
  return m;
}

std::vector<TileSpan> tile_spans(int len, int core, int margin) {
  ISONET_CHECK(len >= 1 && core >= 1 && margin >= 0, "tile_spans: bad geometry (length ", len, ", core ", core,
               ", margin ", margin, ")");
  std::vector<TileSpan> spans;
  for (int a0 = 0; a0 < len; a0 += core) {
    const int a1 = std::min(len, a0 + core);
    spans.push_back({a0, a1, std::max(0, a0 - margin), std::min(len, a1 + margin)});
  }
  return spans;
}

namespace {

// The distinct region lengths of the tiles along one axis (the inner one and those clipped near the ends).
std::vector<int> region_lengths(int len, int core, int margin) {
  std::vector<int> v;
  for (const TileSpan& s : tile_spans(len, core, margin)) v.push_back(s.r1 - s.r0);
  std::sort(v.begin(), v.end());
  v.erase(std::unique(v.begin(), v.end()), v.end());
  return v;
}

double mb(size_t bytes) { return std::ceil(double(bytes) / 1048576.0); }

}  // namespace

RestoreMemory plan_memory(InferenceMemory& mem, const RestoreMemory& held, const SlicePlan& plan, int count, int Hp,
                          int Wp, int margin) {
  ISONET_CHECK(count >= 1 && plan.batch >= 1, "restore: bad slice plan (", count, " slices, batch ", plan.batch, ")");
  RestoreMemory m = held;
  RestoreMemory host;
  const size_t slice_bytes = size_t(Hp) * Wp * sizeof(float);
  if (plan.th == 0) {
    // Calls of `batch` slices, the last one with the remainder; host: the batch in and out.
    m = m.max_with(mem.call(plan.batch, Hp, Wp));
    if (count % plan.batch) m = m.max_with(mem.call(count % plan.batch, Hp, Wp));
    host.slices = 2 * size_t(plan.batch) * slice_bytes;
  } else {
    // One call per tile; the shapes are the products of the distinct region lengths per axis.
    const std::vector<int> rows = region_lengths(Hp, plan.th, margin), cols = region_lengths(Wp, plan.tw, margin);
    for (int rh : rows)
      for (int rw : cols) m = m.max_with(mem.call(1, rh, rw));
    host.slices = 2 * slice_bytes;
    host.tiles = 2 * size_t(rows.back()) * cols.back() * sizeof(float);
  }
  return m.max_with(host);
}

SlicePlan plan_slices(InferenceMemory& mem, const RestoreMemory& held, int count, int Hp, int Wp, int max_batch,
                      size_t budget, int margin) {
  ISONET_CHECK(Hp % 4 == 0 && Wp % 4 == 0 && Hp > 0 && Wp > 0, "restore: padded slices must be multiples of 4, got ",
               Hp, "x", Wp);
  ISONET_CHECK(max_batch >= 1 && count >= 1, "restore: bad batch ", max_batch, " or slice count ", count);
  const auto fits = [&](const SlicePlan& p) {
    return plan_memory(mem, held, p, count, Hp, Wp, margin).total() <= budget;
  };
  for (int nb = std::min(max_batch, count); nb >= 1; --nb)
    if (fits({nb, 0, 0})) return {nb, 0, 0};
  // Strips along the longer axis with the shorter axis whole, while they keep a useful core.
  const bool wide = Wp >= Hp;
  for (int core = (wide ? Wp : Hp) - 4; core >= 16; core -= 4) {
    const SlicePlan p{1, wide ? Hp : core, wide ? core : Wp};
    if (fits(p)) return p;
  }
  // Square tiles (a core as long as the shorter axis would be a strip).
  for (int core = std::min(Hp, Wp) - 4; core >= 4; core -= 4)
    if (fits({1, core, core})) return {1, core, core};
  const int side = 2 * margin + 4;
  const RestoreMemory need = plan_memory(mem, held, {1, 4, 4}, count, Hp, Wp, margin);
  // One decimal for the total and its two parts, so that they add up as printed (the caller's
  // budget must be at least the total, rounded up).
  auto mb1 = [](size_t bytes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", double(bytes) / 1048576.0);
    return std::string(buf);
  };
  fail("restore: --max-memory ", budget >> 20, " MB is too small for this network: tiles of 4x4 pixels (", side, "x",
       side, " with their ", margin, "-pixel context) need ", mb1(need.total()), " MB (", mb1(need.slices),
       " MB for one whole ", Hp, "x", Wp, " slice in and out on the host, ", mb1(need.device_bytes()),
       " MB of device memory): give --max-memory ", mb(need.total()), " or more");
}

}  // namespace isonet::app
