// test_model_file.cpp: safetensors model files: bit-identical round trips (weights, Adam state,
// metadata), refusal of corrupt or foreign files with the right message, atomic writes, and a
// Python reader (json + numpy) of our files when a python3 with numpy is available.
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <unistd.h>
#include <algorithm>
#include <cmath>

#include "kernels/error.h"
#include "nn/model_file.h"
#include "nn/safetensors.h"
#include "nn/trainer.h"
#include "test_util.h"

using namespace isonet;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// A model that went through two training steps (so it has Adam state) with unusual metadata.
Model trained_model(Architecture arch) {
  Model m = Model::create(arch, 5, 0.2f);
  m.metadata.normalization = {1.5, 99.75, 0.1 + 0.2, 1234.56789012345678};
  m.metadata.psf = "gaussian \"sigma_xy\"=2, sigma_z=8 \xce\xbcm";  // quotes and a UTF-8 mu
  m.metadata.psf_mode = "split";
  m.metadata.subsampling = 10.0 / 3.0;
  m.metadata.extra_json = R"({"note": "a, b", "seed": 5})";
  Trainer tr(m, Device::CPU);
  for (int s = 0; s < 2; ++s) {
    Tensor x = Tensor::from_vector({2, 1, 8, 8}, test::random_vector(128, 10 + s, 0.f, 1.f));
    Tensor t = Tensor::from_vector({2, 1, 8, 8}, test::random_vector(128, 20 + s, 0.f, 1.f));
    tr.train_step(x, t);
  }
  return tr.export_model();
}

// Writes f to dir/name and returns the error message of load_model on it ("" if it loads).
std::string load_error(const TempDir& dir, const std::string& name, const SafetensorsFile& f) {
  const std::string path = dir.file(name);
  write_safetensors(path, f);
  try {
    load_model(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
std::string load_error_bytes(const TempDir& dir, const std::string& name, const std::string& bytes) {
  const std::string path = dir.file(name);
  write_bytes(path, bytes);
  try {
    load_model(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("model file: round trip is bit-identical (weights, Adam state, steps, metadata)") {
  TempDir dir;
  for (Architecture arch : {Architecture::IsoNet1, Architecture::IsoNet2}) {
    Model m = trained_model(arch);
    REQUIRE(m.steps == 2);
    REQUIRE(!m.adam.empty());
    const std::string path = dir.file(std::string(architecture_name(arch)) + ".safetensors");
    save_model(path, m);
    Model r = load_model(path);
    CHECK(r.architecture == arch);
    CHECK(r.dropout == m.dropout);
    CHECK(std::memcmp(r.weights.data(), m.weights.data(), m.weights.size() * sizeof(float)) == 0);
    CHECK(r.adam.m == m.adam.m);
    CHECK(r.adam.v == m.adam.v);
    CHECK(r.adam.step == 2);
    CHECK(r.steps == 2);
    CHECK(r.metadata.normalization.low_percentile == m.metadata.normalization.low_percentile);
    CHECK(r.metadata.normalization.high_percentile == m.metadata.normalization.high_percentile);
    CHECK(r.metadata.normalization.low_value == m.metadata.normalization.low_value);  // 0.30000000000000004
    CHECK(r.metadata.normalization.high_value == m.metadata.normalization.high_value);
    CHECK(r.metadata.psf == m.metadata.psf);
    CHECK(r.metadata.psf_mode == "split");
    CHECK(r.metadata.subsampling == m.metadata.subsampling);
    CHECK(r.metadata.extra_json == m.metadata.extra_json);

    // Without the optimizer the file is a third of the size and loads with empty Adam state.
    const std::string light = dir.file("light.safetensors");
    save_model(light, m, /*with_optimizer=*/false);
    Model l = load_model(light);
    CHECK(l.adam.empty());
    CHECK(l.weights == m.weights);
    CHECK(fs::file_size(light) < fs::file_size(path) / 2);
  }
  // Atomic write: no temporary file is left next to the target.
  for (const auto& e : fs::directory_iterator(dir.path))
    CHECK(e.path().filename().string().find(".tmp.") == std::string::npos);
}

TEST_CASE("model file: a saved model predicts exactly what the trained one did") {
  TempDir dir;
  Model m = trained_model(Architecture::IsoNet2);
  save_model(dir.file("m.safetensors"), m);
  Tensor x = Tensor::from_vector({1, 1, 12, 16}, test::random_vector(192, 3, 0.f, 1.f));
  Trainer a(m, Device::CPU), b(load_model(dir.file("m.safetensors")), Device::CPU);
  CHECK(a.predict(x).to_vector() == b.predict(x).to_vector());
}

TEST_CASE("model file: corrupt and foreign files are refused with a message naming the file and the problem") {
  TempDir dir;
  Model m = trained_model(Architecture::IsoNet2);
  const std::string good = dir.file("good.safetensors");
  save_model(good, m);
  const std::string bytes = read_bytes(good);
  const SafetensorsFile valid = read_safetensors(good);
  uint64_t header_len = 0;
  std::memcpy(&header_len, bytes.data(), 8);

  SUBCASE("missing file") {
    CHECK_THROWS_WITH_AS(load_model(dir.file("nope.safetensors")), doctest::Contains("cannot open"), Error);
  }
  SUBCASE("shorter than the length field") {
    std::string e = load_error_bytes(dir, "tiny.safetensors", bytes.substr(0, 5));
    CHECK(e.find("tiny.safetensors") != std::string::npos);
    CHECK(e.find("truncated") != std::string::npos);
  }
  SUBCASE("truncated data") {
    std::string e = load_error_bytes(dir, "cut.safetensors", bytes.substr(0, bytes.size() - 10));
    CHECK(e.find("cut.safetensors") != std::string::npos);
    CHECK(e.find("past the end of the data") != std::string::npos);
  }
  SUBCASE("header length larger than the file") {
    std::string b = bytes;
    uint64_t huge = uint64_t(bytes.size());
    std::memcpy(b.data(), &huge, 8);
    CHECK(load_error_bytes(dir, "len.safetensors", b).find("exceeds the file size") != std::string::npos);
  }
  SUBCASE("header that is not JSON") {
    std::string b = bytes;
    b[8 + header_len / 2] = '\x01';
    CHECK(load_error_bytes(dir, "json.safetensors", b).find("not valid JSON") != std::string::npos);
  }
  SUBCASE("trailing garbage") {
    CHECK(load_error_bytes(dir, "tail.safetensors", bytes + "garbage!").find("8 trailing bytes") != std::string::npos);
  }
  SUBCASE("wrong dtype") {
    std::string b = bytes;
    size_t at = b.find("\"F32\"");
    REQUIRE(at < 8 + header_len);
    b.replace(at, 5, "\"F16\"");
    CHECK(load_error_bytes(dir, "dtype.safetensors", b).find("dtype F16; only F32") != std::string::npos);
  }
  SUBCASE("overlapping tensors, and a hole in the data") {
    // Moves the tensor whose data starts at byte `begin` by `shift` bytes (same length), rebuilding
    // the length field for the edited header.
    auto moved = [&](uint64_t begin, long shift) {
      std::string header = bytes.substr(8, header_len);
      std::string key = "\"data_offsets\":[" + std::to_string(begin) + ",";
      size_t a = header.find(key);
      REQUIRE(a != std::string::npos);
      size_t close = header.find(']', a);
      uint64_t end = std::stoull(header.substr(a + key.size(), close - a - key.size()));
      std::string repl = "\"data_offsets\":[" + std::to_string(begin + shift) + "," + std::to_string(end + shift) + "]";
      std::string h = header.substr(0, a) + repl + header.substr(close + 1);
      uint64_t n = h.size();
      return std::string(reinterpret_cast<const char*>(&n), 8) + h + bytes.substr(8 + header_len);
    };
    // The tensor after the first one (the first one's end is where it starts) moved 4 bytes back.
    const SafeTensor& first = valid.tensors.begin()->second;
    const uint64_t second_begin = first.data.size() * sizeof(float);
    CHECK(load_error_bytes(dir, "overlap.safetensors", moved(second_begin, -4)).find("overlaps the previous tensor") !=
          std::string::npos);
    CHECK(load_error_bytes(dir, "hole.safetensors", moved(0, 4)).find("hole in the data section") != std::string::npos);
  }
  SUBCASE("a shape whose byte count would overflow") {
    std::string b = bytes;
    const std::string key = "\"shape\":[1]";  // the first one-element tensor; its shape grows in place
    size_t at = b.find(key);
    REQUIRE(at < 8 + header_len);
    std::string header = b.substr(8, header_len);
    header.replace(at - 8, key.size(), "\"shape\":[4294967296,4294967296,1024]");
    uint64_t n = header.size();
    std::string out = std::string(reinterpret_cast<const char*>(&n), 8) + header + bytes.substr(8 + header_len);
    CHECK(load_error_bytes(dir, "huge.safetensors", out).find("implausibly large") != std::string::npos);
  }
  SUBCASE("wrong shape") {
    SafetensorsFile f = valid;
    f.tensors["enc1.weight"].shape = {16, 7, 7, 1};  // same element count, wrong layout
    std::string e = load_error(dir, "shape.safetensors", f);
    CHECK(e.find("shape.safetensors") != std::string::npos);
    CHECK(e.find("tensor 'enc1.weight' has shape [16,7,7,1], the architecture needs [16,1,7,7]") != std::string::npos);
  }
  SUBCASE("missing tensor") {
    SafetensorsFile f = valid;
    f.tensors.erase("out.bias");
    CHECK(load_error(dir, "missing.safetensors", f).find("missing tensor 'out.bias'") != std::string::npos);
  }
  SUBCASE("missing optimizer tensor") {
    SafetensorsFile f = valid;
    f.tensors.erase("optimizer.v.mid.weight");
    CHECK(load_error(dir, "opt.safetensors", f).find("missing tensor 'optimizer.v.mid.weight'") != std::string::npos);
  }
  SUBCASE("unexpected tensor") {
    SafetensorsFile f = valid;
    f.tensors["enc3.weight"] = {{2}, {1.f, 2.f}};
    CHECK(load_error(dir, "extra.safetensors", f).find("unexpected tensor 'enc3.weight'") != std::string::npos);
  }
  SUBCASE("unknown architecture") {
    SafetensorsFile f = valid;
    f.metadata["architecture"] = "isonet3";
    CHECK(load_error(dir, "arch.safetensors", f).find("unknown architecture 'isonet3'") != std::string::npos);
  }
  SUBCASE("an IsoNet-1 file claiming to be IsoNet-2") {
    SafetensorsFile f = read_safetensors(good);
    Model m1 = Model::create(Architecture::IsoNet1, 1);
    save_model(dir.file("one.safetensors"), m1);
    f = read_safetensors(dir.file("one.safetensors"));
    f.metadata["architecture"] = "isonet2";
    CHECK(load_error(dir, "claim.safetensors", f).find("missing tensor 'enc1.weight'") != std::string::npos);
  }
  SUBCASE("newer format version, foreign file, bad metadata, non-finite weight") {
    SafetensorsFile f = valid;
    f.metadata["format_version"] = "2";
    CHECK(load_error(dir, "v2.safetensors", f).find("format version 2 is not supported") != std::string::npos);
    f = valid;
    f.metadata.erase("format");
    CHECK(load_error(dir, "foreign.safetensors", f).find("not an isonet model") != std::string::npos);
    f = valid;
    f.metadata["subsampling"] = "4x";
    CHECK(load_error(dir, "meta.safetensors", f).find("'subsampling' = '4x' is not a finite number") !=
          std::string::npos);
    f = valid;
    f.metadata.erase("psf_mode");
    CHECK(load_error(dir, "mode.safetensors", f).find("missing metadata 'psf_mode'") != std::string::npos);
    f = valid;
    f.tensors["dec1.bias"].data[3] = std::nanf("");
    CHECK(load_error(dir, "nan.safetensors", f).find("non-finite value at element 3") != std::string::npos);
  }
}

TEST_CASE("model file: save refuses bad input and leaves no partial file") {
  TempDir dir;
  Model m = Model::create(Architecture::IsoNet1, 1);
  CHECK_THROWS_WITH_AS(save_model(dir.file("no/such/dir/m.safetensors"), m), doctest::Contains("cannot create"), Error);
  m.metadata.extra_json = "[1, 2]";
  CHECK_THROWS_WITH_AS(save_model(dir.file("m.safetensors"), m), doctest::Contains("JSON object"), Error);
  CHECK(!fs::exists(dir.file("m.safetensors")));
}

TEST_CASE("model file: Python (json + numpy) reads our files") {
  const std::string python = test::find_python("numpy");
  if (python.empty()) {
    MESSAGE("skipped: no python3 with numpy is available");
    return;
  }
  TempDir dir;
  Model m = trained_model(Architecture::IsoNet2);
  const std::string path = dir.file("py.safetensors");
  save_model(path, m);
  // A safetensors reader in a few lines of numpy: prints the architecture, then for every tensor
  // of the model its name, shape and the float64 sum of its values.
  const std::string script = dir.file("read.py");
  std::ofstream(script) << "import json, struct, sys\n"
                           "import numpy as np\n"
                           "raw = open(sys.argv[1], 'rb').read()\n"
                           "n = struct.unpack('<Q', raw[:8])[0]\n"
                           "h = json.loads(raw[8:8 + n])\n"
                           "data = raw[8 + n:]\n"
                           "print(h['__metadata__']['architecture'])\n"
                           "for k in sorted(h):\n"
                           "    if k == '__metadata__' or k.startswith('optimizer.'): continue\n"
                           "    b, e = h[k]['data_offsets']\n"
                           "    a = np.frombuffer(data[b:e], dtype='<f4').reshape(h[k]['shape'])\n"
                           "    print(k, 'x'.join(map(str, a.shape)), repr(float(a.astype(np.float64).sum())))\n";
  FILE* p = ::popen((python + " " + script + " " + path).c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  char buf[512];
  while (std::fgets(buf, sizeof buf, p)) out += buf;
  REQUIRE(::pclose(p) == 0);

  // Expected: the tensors in name order (as Python's sorted()), with shapes, and their sums.
  std::vector<size_t> order(m.layout.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return m.layout.spec(a).name < m.layout.spec(b).name; });
  std::istringstream lines(out);
  std::string arch;
  std::getline(lines, arch);
  CHECK(arch == "isonet2");
  for (size_t i : order) {
    const ParamSpec& s = m.layout.spec(i);
    std::string name, dims, sum_text;
    lines >> name >> dims >> sum_text;
    std::string want_dims;
    for (size_t d = 0; d < s.dims.size(); ++d) want_dims += (d ? "x" : "") + std::to_string(s.dims[d]);
    CHECK(name == s.name);
    CHECK(dims == want_dims);
    const float* w = m.weights.data() + m.layout.offset(i);
    double sum = 0, abs_sum = 0;
    for (size_t k = 0; k < s.numel(); ++k) {
      sum += w[k];
      abs_sum += std::fabs(w[k]);
    }
    // numpy sums float64 pairwise, we sequentially: only rounding in the last bits of a double
    // sum differs (bounded by n * 2^-53 * sum|w|, well under 1e-12 * sum|w| for n < 2^20).
    INFO(s.name << ": python " << sum_text << ", ours " << sum);
    CHECK(std::fabs(std::stod(sum_text) - sum) <= 1e-12 * abs_sum);
  }
  std::string rest;
  CHECK(!(lines >> rest));  // nothing else printed
}

TEST_CASE("model file: PyTorch loads our files into its modules and reproduces our predictions") {
  const std::string python = test::find_python("numpy, torch");
  if (python.empty()) {
    MESSAGE("skipped: no python3 with numpy and torch is available");
    return;
  }
  TempDir dir;
  for (Architecture arch : {Architecture::IsoNet1, Architecture::IsoNet2}) {
    CAPTURE(std::string(architecture_name(arch)));
    Model m = trained_model(arch);
    const std::string model_path = dir.file("m.safetensors"), in_path = dir.file("in.safetensors"),
                      out_path = dir.file("out.safetensors");
    save_model(model_path, m);
    const Tensor x = Tensor::from_vector({2, 1, 12, 16}, test::random_vector(384, 9, 0.f, 1.f));
    write_safetensors(in_path, {{{"input", {{2, 1, 12, 16}, x.to_vector()}}}, {}});
    // scripts/torch_reference.py's load_model_file uses strict load_state_dict: names and shapes
    // must match our file exactly.
    const std::string cmd = "cd '" + test::source_path("scripts") +
                            "' && " + python + " -c \"import sys, numpy as np, torch, torch_reference as r\n"
                            "net, meta = r.load_model_file(sys.argv[1])\n"
                            "x = r.read_safetensors(sys.argv[2])[0]['input']\n"
                            "with torch.no_grad(): y = net(torch.from_numpy(x.astype(np.float64))).numpy()\n"
                            "r.write_safetensors(sys.argv[3], {'output': y.astype(np.float32)}, {})\" '" +
                            model_path + "' '" + in_path + "' '" + out_path + "'";
    REQUIRE(std::system(cmd.c_str()) == 0);
    const std::vector<float> ref = read_safetensors(out_path).tensors.at("output").data;
    Trainer tr(m, Device::CPU);
    const std::vector<float> got = tr.predict(x).to_vector();
    REQUIRE(ref.size() == got.size());
    // Our fp32 against PyTorch's float64 (as in test_torch_reference.cpp): ~1e-6 on O(1) outputs.
    CHECK_CLOSE_ARRAYS("torch prediction from our file", ref.data(), got.data(), got.size(), 2e-5, 1e-4);
  }
}
