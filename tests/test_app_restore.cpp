// test_app_restore.cpp: `isonet restore`: output geometry and spacing metadata, bounded-memory
// processing (slabs of slices and tiles inside slices) giving the untiled result, and the errors
// a user can act on (missing files, NaN input) leaving no output file behind. The networks are
// freshly initialized (untrained) models: the geometry and tiling do not depend on training.
#include <algorithm>
#include <cmath>
#include <functional>
#include <sstream>

#include "apps/cmd_restore.h"
#include "apps/restore_memory.h"
#include "imaging/normalize.h"
#include "imaging/tiff.h"
#include "kernels/error.h"
#include "nn/model_file.h"
#include "test_util.h"

using namespace isonet;
using namespace isonet::app;

namespace {

// A smooth random-ish volume (sums of sines plus noise) with positive values, voxel (S*dx, dx, dx).
Volume test_volume(int nz, int ny, int nx, double S, uint64_t seed) {
  Volume v(nz, ny, nx);
  const auto noise = test::random_vector(v.size(), seed, 0.f, 0.2f);
  for (int z = 0; z < nz; ++z)
    for (int y = 0; y < ny; ++y)
      for (int x = 0; x < nx; ++x)
        v.at(z, y, x) = 100.f + 50.f * float(std::sin(0.3 * x + 0.7 * z) * std::cos(0.2 * y)) +
                        100.f * noise[v.index(z, y, x)];
  v.voxel = VoxelSize{S * 0.1, 0.1, 0.1, "um"};
  return v;
}

Model test_model(double S, Architecture arch = Architecture::IsoNet2) {
  Model m = Model::create(arch, 7);
  m.metadata.subsampling = S;
  return m;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

float value_range(const Volume& v) {
  float lo = v.data[0], hi = v.data[0];
  for (float x : v.data) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
  }
  return hi - lo;
}

}  // namespace

TEST_CASE("restore: output has ceil(nz*S) planes and z spacing = lateral pixel size") {
  test::TempDir dir;
  for (double S : {3.0, 2.5}) {
    CAPTURE(S);
    const Volume in = test_volume(5, 13, 11, S, 1);
    write_tiff(dir.file("in.tif"), in);
    save_model(dir.file("m.safetensors"), test_model(S));
    RestoreOptions o;
    o.model = dir.file("m.safetensors");
    o.input = dir.file("in.tif");
    o.output = dir.file("out.tif");
    o.device = "cpu";
    o.quiet = true;
    std::FILE* progress = std::fopen(dir.file("progress.txt").c_str(), "w");  // not a terminal: plain lines
    REQUIRE(progress != nullptr);
    o.progress = progress;
    const Volume r = run_restore(o);
    std::fclose(progress);
    // The final progress line counts every XZ and YZ slice (ny + nx of the upsampled volume).
    CHECK(test::contains(test::read_text(dir.file("progress.txt")), "restore: 24/24 slices"));
    TiffInfo info;
    const Volume back = read_tiff(o.output, &info);
    const int expect_nz = int(std::ceil(5 * S));  // 15 and 13 (12.5 rounded up)
    CHECK(r.nz == expect_nz);
    CHECK(back.nz == expect_nz);
    CHECK(back.ny == 13);
    CHECK(back.nx == 11);
    CHECK(info.has_z_spacing);
    CHECK(back.voxel.z == doctest::Approx(0.1).epsilon(1e-6));
    CHECK(back.voxel.x == doctest::Approx(0.1).epsilon(1e-6));
    for (float v : back.data) REQUIRE(std::isfinite(v));
  }
}

TEST_CASE("restore: slabs of slices and tiles inside slices give the untiled result") {
  const double S = 8.0;
  // XZ slices are [56, 160]: wide enough for tiles with a 48-pixel margin.
  const Volume in = test_volume(7, 3, 160, S, 2);
  const Model model = test_model(S);
  std::ostringstream log;
  RestoreSettings whole;
  whole.device = Device::CPU;
  whole.batch = 8;
  RestoreStats s_whole, s_one, s_tiled;
  const Volume ref = restore_volume(model, in, whole, log, &s_whole);
  CHECK(s_whole.tile_h == 0);
  CHECK(s_whole.batch_used == 3);  // all 3 XZ slices in one call

  RestoreSettings one = whole;
  one.batch = 1;
  const Volume r1 = restore_volume(model, in, one, log, &s_one);
  CHECK(s_one.batch_used == 1);

  // A budget of exactly what strips of 56 rows with 28-column cores hold (regions up to 124
  // columns with the 48-column margins): a whole padded [56, 160] slice needs more, and so do
  // 32-column cores (128-column regions), so the XZ slices go in those strips; the YZ slices
  // [56, 3] then fit whole next to the buffers the strips left.
  InferenceMemory mem(Architecture::IsoNet2, Device::CPU);
  const size_t strip_bytes = plan_memory(mem, {}, {1, 56, 28}, 3, 56, 160, 48).total();
  RestoreSettings tiled = whole;
  tiled.max_memory_bytes = strip_bytes;
  const Volume rt = restore_volume(model, in, tiled, log, &s_tiled);
  INFO(log.str());
  CHECK(s_tiled.tile_h == 56);
  CHECK(s_tiled.tile_w == 28);
  CHECK(s_tiled.memory_bytes <= tiled.max_memory_bytes);
  CHECK(s_whole.memory_bytes > tiled.max_memory_bytes);

  REQUIRE(r1.size() == ref.size());
  REQUIRE(rt.size() == ref.size());
  // Identical arithmetic per output pixel (measured: bit-identical on the CPU) up to the order of
  // float sums inside the conv kernels, which another backend may block differently for other
  // image widths and batch sizes: a few ulps amplified through 6 layers. 1e-5 of the value range
  // is far below a real difference (a margin too small for the receptive field changes values by
  // more than 1e-3 of the range, next test case).
  const float atol = 1e-5f * value_range(ref);
  CHECK_CLOSE_ARRAYS("batch 1 vs batch 8", ref.data.data(), r1.data.data(), ref.size(), atol, 1e-5);
  CHECK_CLOSE_ARRAYS("tiled vs untiled", ref.data.data(), rt.data.data(), ref.size(), atol, 1e-5);

  // A budget below the smallest tiles with their margin is refused with the size they need.
  RestoreSettings tiny = whole;
  tiny.max_memory_bytes = plan_memory(mem, {}, {1, 4, 4}, 3, 56, 160, 48).total() - 1;
  const std::string msg = error_of([&] { restore_volume(model, in, tiny, log); });
  CHECK(contains(msg, "--max-memory"));
  CHECK(contains(msg, "too small"));
}

TEST_CASE("restore: a tile margin too small for the receptive field changes the result (the test can fail)") {
  const double S = 8.0;
  const Volume in = test_volume(7, 3, 160, S, 3);
  const Model model = test_model(S);
  std::ostringstream log;
  RestoreSettings whole;
  const Volume ref = restore_volume(model, in, whole, log);
  InferenceMemory mem(Architecture::IsoNet2, Device::CPU);
  RestoreSettings narrow = whole;
  narrow.tile_margin = 8;
  // What strips of 56 rows with 64-column cores (80-column regions) hold: less than a whole slice.
  narrow.max_memory_bytes = plan_memory(mem, {}, {1, 56, 64}, 3, 56, 160, 8).total();
  RestoreStats st;
  const Volume r = restore_volume(model, in, narrow, log, &st);
  REQUIRE(st.tile_h > 0);
  double max_diff = 0;
  for (size_t i = 0; i < ref.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(ref.data[i] - r.data[i])));
  CHECK(max_diff > 1e-3 * value_range(ref));
}

TEST_CASE("restore: geometric fusion is non-negative in normalized units") {
  const double S = 4.0;
  const Volume in = test_volume(4, 9, 10, S, 4);
  std::ostringstream log;
  RestoreSettings g;
  g.fusion = Fusion::Geometric;
  const Volume r = restore_volume(test_model(S), in, g, log);
  // sqrt(max(a,0) max(b,0)) >= 0 normalized, i.e. >= the input's 2nd percentile after the undo.
  const NormalizeParams p = percentile_params(in, 2.0, 99.8);
  for (float v : r.data) REQUIRE(v >= p.p_lo - 1e-3f * float(p.scale()));
  CHECK(parse_fusion("mean") == Fusion::Mean);
  CHECK(contains(error_of([] { parse_fusion("max"); }), "accepted: mean, geometric"));
}

TEST_CASE("restore: missing files and NaN input are clear errors and leave no output") {
  test::TempDir dir;
  const Volume in = test_volume(4, 9, 10, 3.0, 5);
  write_tiff(dir.file("in.tif"), in);
  save_model(dir.file("m.safetensors"), test_model(3.0));
  RestoreOptions o;
  o.model = dir.file("m.safetensors");
  o.input = dir.file("in.tif");
  o.output = dir.file("out.tif");
  o.quiet = true;
  o.device = "cpu";

  RestoreOptions missing_model = o;
  missing_model.model = dir.file("nope.safetensors");
  CHECK(contains(error_of([&] { run_restore(missing_model); }), "model file"));
  CHECK(contains(error_of([&] { run_restore(missing_model); }), "cannot be opened"));

  RestoreOptions missing_input = o;
  missing_input.input = dir.file("nope.tif");
  CHECK(contains(error_of([&] { run_restore(missing_input); }), "input file"));

  Volume nan = in;
  nan.at(2, 3, 4) = std::nanf("");
  write_tiff(dir.file("nan.tif"), nan);
  RestoreOptions with_nan = o;
  with_nan.input = dir.file("nan.tif");
  const std::string msg = error_of([&] { run_restore(with_nan); });
  CHECK(contains(msg, "non-finite"));
  CHECK(contains(msg, "(z,y,x)=(2,3,4)"));

  Volume flat(1, 9, 10, 1.f);
  write_tiff(dir.file("flat.tif"), flat);
  RestoreOptions two_d = o;
  two_d.input = dir.file("flat.tif");
  CHECK(contains(error_of([&] { run_restore(two_d); }), "a 3D volume"));

  // Only the inputs are in the directory: nothing half-written (no temp files either).
  auto names = dir.entries();
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"flat.tif", "in.tif", "m.safetensors", "nan.tif"});
}

TEST_CASE("restore: several inputs into --output-dir, each as restoring it alone; wrong combinations refused first") {
  test::TempDir dir;
  write_tiff(dir.file("a.tif"), test_volume(4, 9, 10, 3.0, 6));
  write_tiff(dir.file("b.ome.tif"), test_volume(5, 9, 10, 3.0, 7));
  save_model(dir.file("m.safetensors"), test_model(3.0));
  std::string sub = dir.file("out");
  REQUIRE(std::system(("mkdir '" + sub + "'").c_str()) == 0);
  RestoreOptions o;
  o.model = dir.file("m.safetensors");
  o.quiet = true;
  o.progress = nullptr;
  o.device = "cpu";
  const std::vector<std::string> outs = run_restore_inputs(o, {dir.file("a.tif"), dir.file("b.ome.tif")}, sub);
  CHECK(outs == std::vector<std::string>{sub + "/a_iso.tif", sub + "/b_iso.tif"});
  RestoreOptions single = o;
  single.input = dir.file("b.ome.tif");
  single.output = dir.file("b_alone.tif");
  const Volume alone = run_restore(single);
  CHECK(read_tiff(sub + "/b_iso.tif").data == alone.data);
  CHECK(read_tiff(sub + "/a_iso.tif").nz == 12);

  // One input with --output is the single-volume command.
  RestoreOptions one = o;
  one.output = dir.file("one.tif");
  CHECK(run_restore_inputs(one, {dir.file("a.tif")}, "") == std::vector<std::string>{dir.file("one.tif")});

  // Refused before any work (no new file anywhere).
  const auto before = dir.entries();
  CHECK(contains(error_of([&] { run_restore_inputs(one, {dir.file("a.tif"), dir.file("b.ome.tif")}, ""); }),
                 "2 inputs need --output-dir DIR"));
  CHECK(contains(error_of([&] { run_restore_inputs(o, {dir.file("a.tif")}, ""); }), "not neither"));
  CHECK(contains(error_of([&] { run_restore_inputs(one, {dir.file("a.tif")}, sub); }), "not both"));
  CHECK(contains(error_of([&] { run_restore_inputs(o, {dir.file("a.tif"), sub + "/../a.tif"}, sub); }),
                 "same file name"));
  CHECK(contains(error_of([&] { run_restore_inputs(o, {dir.file("a.tif")}, dir.file("missing")); }),
                 "is not an existing directory"));
  RestoreOptions with_preview = o;
  with_preview.preview = dir.file("p.png");
  CHECK(contains(error_of([&] { run_restore_inputs(with_preview, {dir.file("a.tif"), dir.file("b.ome.tif")}, sub); }),
                 "--preview takes one input"));
  CHECK(dir.entries() == before);
}
