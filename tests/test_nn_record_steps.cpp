// test_nn_record_steps.cpp: recorded training steps (TrainerOptions::record_steps; on CUDA a CUDA
// graph per batch and patch size, nn/trainer.h) on the CPU, where Backend::record re-runs the same
// step logic: the per-step values (dropout step, Adam scalars) come from backend memory uploaded
// before each replay, so this checks that logic without a GPU: recorded steps equal unrecorded
// ones bit for bit, across batch-size changes, interleaved inference and a resumed model, and a
// backend that cannot record falls back to unrecorded steps. The ops that read those values from
// memory (dropout step_offset, adam_update_scalars) are checked here on the CPU and in
// test_cuda_ops_parity.cpp on the GPU; the CUDA graph itself in test_cuda_model_parity.cpp.
#include <functional>
#include <memory>
#include <vector>

#include "kernels/adam.h"
#include "kernels/dropout.h"
#include "kernels/error.h"
#include "nn/model.h"
#include "forwarding_backend.h"
#include "nn/trainer.h"
#include "nn_toy_data.h"
#include "test_util.h"

using namespace isonet;

TEST_CASE("dropout step_offset and Adam scalars from memory equal the by-value ops (CPU)") {
  const size_t count = 333;
  const auto x = test::random_vector(count, 5);
  DropoutParams d;
  d.p = 0.4f, d.seed = 9, d.step = 2;
  const uint64_t offset = 48;
  DropoutParams with_offset = d, summed = d;
  with_offset.step_offset = &offset;
  summed.step = 50;
  std::vector<float> a(count), b(count);
  cpu::dropout_forward(with_offset, x.data(), a.data(), count);
  cpu::dropout_forward(summed, x.data(), b.data(), count);
  CHECK(a == b);
  cpu::dropout_forward(d, x.data(), b.data(), count);
  CHECK(a != b);  // the offset changes the mask

  AdamParams adam;
  const auto g = test::random_vector(count, 6);
  std::vector<float> p1 = test::random_vector(count, 7), m1(count, 0.01f), v1(count, 1e-4f);
  std::vector<float> p2 = p1, m2 = m1, v2 = v1;
  const AdamStepScalars sc = adam_step_scalars(adam, 4);
  cpu::adam_update(adam, 4, p1.data(), g.data(), m1.data(), v1.data(), count);
  cpu::adam_update_scalars(adam, &sc, p2.data(), g.data(), m2.data(), v2.data(), count);
  CHECK(p1 == p2);
  CHECK(m1 == m2);
  CHECK(v1 == v2);
  CHECK_THROWS_AS(cpu::adam_update_scalars(adam, nullptr, p2.data(), g.data(), m2.data(), v2.data(), count), Error);
}

TEST_CASE("recorded training steps equal unrecorded ones bit for bit (CPU)") {
  const Model m = Model::create(Architecture::IsoNet2, 31, 0.2f);  // dropout on
  TrainerOptions plain;
  plain.dropout_seed = 4;
  TrainerOptions recorded = plain;
  recorded.record_steps = true;
  Trainer a(m, Device::CPU, plain), b(m, Device::CPU, recorded);
  auto step_both = [&](int n, int h, int w, uint64_t seed) {
    Tensor x, t;
    test::toy_pair(n, h, w, seed, x, t);
    const float la = a.train_step(x, t), lb = b.train_step(x, t);
    CHECK(la == lb);
  };
  for (int s = 0; s < 4; ++s) step_both(3, 16, 20, 100 + s);
  CHECK(a.weights() == b.weights());
  // Another batch size (new buffers: a new recording), then back.
  for (int s = 0; s < 2; ++s) step_both(2, 24, 16, 200 + s);
  step_both(3, 16, 20, 300);
  // Inference on a larger size in between re-lays out the buffers and grows the workspace.
  Tensor big, unused;
  test::toy_pair(5, 40, 44, 400, big, unused);
  CHECK(a.predict(big).to_vector() == b.predict(big).to_vector());
  for (int s = 0; s < 2; ++s) step_both(3, 16, 20, 500 + s);
  CHECK(a.weights() == b.weights());
  CHECK(a.steps() == b.steps());
  CHECK(a.adam_step() == b.adam_step());
  CHECK(a.recorded_steps() == 0);
  CHECK(b.recorded_steps() == b.steps());  // every step ran from a recording

  // A model resumed from a recorded trainer continues identically (step counts carry the masks).
  Trainer a2(a.export_model(), Device::CPU, plain), b2(b.export_model(), Device::CPU, recorded);
  Tensor x, t;
  test::toy_pair(3, 16, 20, 600, x, t);
  CHECK(a2.train_step(x, t) == b2.train_step(x, t));
  CHECK(a2.weights() == b2.weights());
}

namespace {
// The CPU backend, except that it cannot record (as a GPU whose driver refused a capture).
class RecordRefusingBackend final : public test::ForwardingBackend {
 public:
  std::unique_ptr<RecordedWork> record(std::function<void()>) override { fail("no recording on this backend"); }
};
}  // namespace

TEST_CASE("recorded steps fall back to unrecorded ones when the backend cannot record") {
  const Model m = Model::create(Architecture::IsoNet2, 37, 0.2f);
  TrainerOptions plain;
  plain.dropout_seed = 5;
  TrainerOptions recorded = plain;
  recorded.record_steps = true;
  Trainer a(m, Device::CPU, plain), b(m, std::make_unique<RecordRefusingBackend>(), recorded);
  for (int s = 0; s < 3; ++s) {
    Tensor x, t;
    test::toy_pair(2, 16, 16, 700 + s, x, t);
    CHECK(a.train_step(x, t) == b.train_step(x, t));
  }
  CHECK(a.weights() == b.weights());
  CHECK(b.recorded_steps() == 0);
  CHECK_FALSE(b.options().record_steps);  // given up after the first refusal (logged once)
}
