// test_torch_reference.cpp: our CPU IsoNet-1 / IsoNet-2 against PyTorch (float64), from the
// fixtures that scripts/torch_reference.py wrote into tests/fixtures/ (committed; no Python needed
// here). Per case: the seeded Glorot init agrees with the script's port of it, then from identical
// weights we compare the inference output, the PSNR loss of 3 training steps, the gradients of
// step 1 and the weights after 3 Adam steps (lr 5e-3). One case runs with dropout ON: the script
// applies our counter-based masks, so dropout is checked against PyTorch too.
//
// Regenerate the fixtures: /usr/bin/python3 scripts/torch_reference.py tests/fixtures
#include <algorithm>
#include <cmath>

#include "nn/model.h"
#include "nn/safetensors.h"
#include "nn/trainer.h"
#include "test_util.h"

using namespace isonet;

namespace {

struct Fixture {
  SafetensorsFile file;
  const std::vector<float>& get(const std::string& name) const {
    auto it = file.tensors.find(name);
    REQUIRE_MESSAGE(it != file.tensors.end(), "fixture has no tensor " << name);
    return it->second.data;
  }
  std::string meta(const std::string& key) const {
    auto it = file.metadata.find(key);
    REQUIRE_MESSAGE(it != file.metadata.end(), "fixture has no metadata " << key);
    return it->second;
  }
};

// The script stores tensors with more than sample_threshold elements as every stride-th element.
std::vector<float> sample(const float* data, size_t count, size_t stride, size_t threshold) {
  if (count <= threshold) return std::vector<float>(data, data + count);
  std::vector<float> s;
  for (size_t i = 0; i < count; i += stride) s.push_back(data[i]);
  return s;
}

float max_abs(const std::vector<float>& v) {
  float m = 0;
  for (float x : v) m = std::max(m, std::fabs(x));
  return m;
}

void run_case(const std::string& fixture_name) {
  Fixture fx{read_safetensors(test::source_path("tests/fixtures/" + fixture_name + ".safetensors"))};
  const Architecture arch = parse_architecture(fx.meta("architecture"));
  const uint64_t init_seed = std::stoull(fx.meta("init_seed"));
  const float dropout = std::stof(fx.meta("dropout"));
  const size_t stride = std::stoul(fx.meta("sample_stride")), threshold = std::stoul(fx.meta("sample_threshold"));
  const int steps = std::stoi(fx.meta("steps"));
  const std::vector<int64_t>& xs = fx.file.tensors.at("input").shape;
  REQUIRE(xs.size() == 4);
  const Shape shape{int(xs[0]), int(xs[1]), int(xs[2]), int(xs[3])};
  const Tensor x = Tensor::from_vector(shape, fx.get("input"));
  const Tensor t = Tensor::from_vector(shape, fx.get("target"));

  Model m = Model::create(arch, init_seed, dropout);
  for (size_t i = 0; i < m.layout.size(); i += 2) {
    // Our init and the script's port of it must agree bit for bit (same hash, same double math).
    const std::string layer = m.layout.spec(i).name.substr(0, m.layout.spec(i).name.find('.'));
    const std::vector<float>& check = fx.get("initcheck." + layer + ".weight");
    CHECK(std::equal(check.begin(), check.end(), m.weights.begin() + m.layout.offset(i)));
    const std::vector<float>& bias = fx.get("init." + layer + ".bias");
    REQUIRE(bias.size() == m.layout.spec(i + 1).numel());
    std::copy(bias.begin(), bias.end(), m.weights.begin() + m.layout.offset(i + 1));
  }
  TrainerOptions opt;
  opt.dropout_seed = std::stoull(fx.meta("dropout_seed"));
  Trainer tr(m, Device::CPU, opt);

  // Forward (inference). fp32 with sums over up to 48*49 = 2352 products per output, against a
  // float64 reference: errors ~1e-6 relative to the activations (outputs are O(1)).
  const std::vector<float> y = tr.predict(x).to_vector();
  CHECK_CLOSE_ARRAYS("inference output", fx.get("output").data(), y.data(), y.size(), 2e-5, 1e-4);

  // Gradients of step 1. Each is a sum over the batch and all pixels (up to 2*16*12 = 384 products
  // per weight, and each factor already carries the forward's ~1e-6 relative error), with
  // cancellation: a gradient can be much smaller than the terms it sums. So the absolute tolerance
  // scales with the tensor's largest gradient: 1e-4 * max|g| (~100x the observed error), plus 1e-3
  // relative.
  const float loss1 = tr.compute_gradients(x, t);
  const std::vector<float> grads = tr.gradients();
  for (size_t i = 0; i < m.layout.size(); ++i) {
    const ParamSpec& s = m.layout.spec(i);
    const std::vector<float>& ref = fx.get("grad." + s.name);
    std::vector<float> got = sample(grads.data() + m.layout.offset(i), s.numel(), stride, threshold);
    REQUIRE(got.size() == ref.size());
    CHECK_CLOSE_ARRAYS("gradient of " << s.name, ref.data(), got.data(), got.size(), 1e-4 * max_abs(ref), 1e-3);
  }

  // Losses of the 3 training steps. |L| ~ 1..15 dB; fp32 outputs change mse by ~1e-6 relative, i.e.
  // ~5e-6 dB at step 1. Steps 2-3 run on weights moved by Adam, which differ from the reference's
  // by the rounding of the updates (see below): 1e-3 dB then is still 1000x tighter than the
  // step-to-step changes (several dB), so a wrong update is caught.
  const std::vector<float>& ref_loss = fx.get("loss");
  REQUIRE(int(ref_loss.size()) == steps);
  CHECK(std::fabs(loss1 - ref_loss[0]) <= 1e-4 + 1e-5 * std::fabs(ref_loss[0]));
  for (int s = 0; s < steps; ++s) {
    const float loss = tr.train_step(x, t);
    INFO("step " << s + 1 << ": loss " << loss << ", PyTorch " << ref_loss[s]);
    CHECK(std::fabs(loss - ref_loss[s]) <= (s == 0 ? 1e-4 : 1e-3) + 1e-5 * std::fabs(ref_loss[s]));
  }

  // Weights after 3 Adam steps. Adam divides m by sqrt(v), so each update is ~lr times a ratio of
  // gradients: a gradient's RELATIVE error becomes an absolute weight error of ~lr * rel per step.
  // For typical elements rel ~1e-5 and weights agree to ~1e-7 (observed). A gradient far below its
  // tensor's scale keeps the absolute error of the sums it came from, so its relative error is
  // large (observed: one IsoNet-1 weight off by 2.02e-5), and a gradient at the noise level may even
  // change sign between two correct implementations, flipping the update by 2*lr. We therefore
  // require every element within 2e-5 except a tiny fraction (<= 0.1%), which must still be within
  // 3 steps * 2 * lr = 0.03.
  const std::vector<float> w = tr.weights();
  size_t total = 0, flips = 0;
  for (size_t i = 0; i < m.layout.size(); ++i) {
    const ParamSpec& s = m.layout.spec(i);
    const std::vector<float>& ref = fx.get("final." + s.name);
    std::vector<float> got = sample(w.data() + m.layout.offset(i), s.numel(), stride, threshold);
    REQUIRE(got.size() == ref.size());
    for (size_t k = 0; k < got.size(); ++k) {
      const double d = std::fabs(double(got[k]) - ref[k]);
      ++total;
      if (d <= 2e-5) continue;
      ++flips;
      INFO(s.name << " sample " << k << ": ours " << got[k] << ", PyTorch " << ref[k]);
      CHECK(d <= 3 * 2 * 5e-3 + 1e-5);
    }
  }
  INFO(flips << " of " << total << " sampled weights differ by more than 2e-5 after " << steps << " Adam steps");
  CHECK(flips * 1000 <= total);
  MESSAGE(fixture_name << ": " << flips << " of " << total << " sampled weights beyond 2e-5 after Adam");
}

}  // namespace

TEST_CASE("torch reference: IsoNet-1 forward, loss, gradients and Adam steps match PyTorch") {
  run_case("torch_isonet1");
}

TEST_CASE("torch reference: IsoNet-2 forward, loss, gradients and Adam steps match PyTorch") {
  run_case("torch_isonet2");
}

TEST_CASE("torch reference: IsoNet-2 with our dropout masks matches PyTorch") {
  run_case("torch_isonet2_dropout");
}
