// test_app_inputs.cpp: the parsing and checking of what users give the `isonet` commands: PSF
// specs (good and bad), PSFs built on voxel grids (units, measured beads with and without voxel
// metadata), the subsampling factor from TIFF metadata (printed exactly) and its errors, number
// lists, noise specs; and the all-or-nothing writing of a command's output files.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <new>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "apps/cmd_deconv.h"
#include "apps/cmd_simulate.h"
#include "apps/common.h"
#include "apps/psf_spec.h"
#include "apps/subsampling.h"
#include "imaging/psf.h"
#include "imaging/tiff.h"
#include "kernels/error.h"
#include "libtiff_test_util.h"
#include "test_util.h"

using namespace isonet;
using namespace isonet::app;

namespace {

using test::contains;
using test::error_of;

}  // namespace

TEST_CASE("psf spec: accepted forms parse with their numbers") {
  PsfSpec g = parse_psf_spec("gaussian:2,8");
  CHECK(g.kind == PsfKind::Gaussian);
  REQUIRE(g.values.size() == 2);
  CHECK(g.values[0] == 2.0);
  CHECK(g.values[1] == 8.0);
  CHECK(parse_psf_spec("Gaussian:1.5, 4.25").values[1] == 4.25);
  CHECK(parse_psf_spec("widefield:1.2,0.52,1.33").kind == PsfKind::Widefield);
  CHECK(parse_psf_spec("widefield:1.2,0.52,1.33,1.45,10").values.size() == 5);
  CHECK(parse_psf_spec("confocal:1.1,0.488,0.52,1.33,1").kind == PsfKind::Confocal);
  CHECK(parse_psf_spec("lightsheet:0.8,0.1,0.52,1.33").kind == PsfKind::LightSheet);
  CHECK(parse_psf_spec("lightsheet:0.8,0.1,0.488,0.52,1.33").values.size() == 5);
  PsfSpec f = parse_psf_spec("beads/psf.TIF");
  CHECK(f.kind == PsfKind::File);
  CHECK(f.path == "beads/psf.TIF");
  CHECK(parse_psf_spec("file:bead.data").path == "bead.data");
  CHECK(describe_psf(g, PsfUnits::Pixels) == "gaussian sigma_xy=2 px sigma_z=8 px");
  CHECK(parse_psf_units("um") == PsfUnits::Microns);
  CHECK(parse_psf_units("px") == PsfUnits::Pixels);
}

TEST_CASE("psf spec: malformed specs name the problem and list the accepted forms") {
  const char* bad[] = {"",          "gaussian",         "gauss:2,8",           "gaussian:2",      "gaussian:2,8,3",
                       "gaussian:a,8", "gaussian:2,,8", "gaussian:2,8,",       "gaussian:-1,8",   "widefield:1.5,0.5,1.33",
                       "confocal:1,0.5,0.5,1.33", "lightsheet:0.8,0.1", "widefield:1.2,0.52,1.33,nan", "file:"};
  for (const char* text : bad) {
    const std::string msg = error_of([&] { parse_psf_spec(text); });
    INFO("spec '" << text << "' -> " << msg);
    CHECK(contains(msg, "PSF spec"));
    CHECK(contains(msg, "accepted forms"));
    CHECK(contains(msg, "gaussian:SXY,SZ"));
    CHECK(contains(msg, "lightsheet:"));
  }
  CHECK(contains(error_of([] { parse_psf_spec("gauss:2,8"); }), "unknown model 'gauss'"));
  CHECK(contains(error_of([] { parse_psf_spec("gaussian:2"); }), "takes 2 numbers, got 1"));
  CHECK(contains(error_of([] { parse_psf_units("nm"); }), "accepted: px, um"));
}

TEST_CASE("psf build: gaussian sigmas in lateral pixels or um land on the grid's axes") {
  std::ostringstream log;
  const PsfSpec spec = parse_psf_spec("gaussian:2,8");
  // Anisotropic grid: z voxel 4x the lateral one. In px units sigma_z = 8 lateral px = 2 z voxels.
  PsfBuildContext ctx;
  const VoxelSize aniso{0.4, 0.1, 0.1, "um"};
  const Volume a = build_psf(spec, aniso, ctx, log);
  CHECK(a.nz % 2 == 1);
  CHECK(a.ny == 2 * 8 + 1);  // 4 sigma each side
  CHECK(a.nz == 2 * 8 + 1);  // 4 * 2 z voxels each side
  // FWHM along z in um: 2.3548 * 8 px * 0.1 um; sampled Gaussian, linear-interpolated crossings:
  // a few percent error at 2 samples per sigma.
  CHECK(psf_fwhm(a, 0) == doctest::Approx(2.3548 * 0.8).epsilon(0.05));
  CHECK(psf_fwhm(a, 2) == doctest::Approx(2.3548 * 0.2).epsilon(0.05));
  // um units: sigma_xy 0.2 um = 2 px, sigma_z 0.8 um: the same PSF.
  ctx.units = PsfUnits::Microns;
  const Volume b = build_psf(parse_psf_spec("gaussian:0.2,0.8"), aniso, ctx, log);
  REQUIRE(b.size() == a.size());
  CHECK_CLOSE_ARRAYS("px vs um spec", a.data.data(), b.data.data(), a.size(), 1e-7, 1e-5);
  CHECK(b.voxel.z == 0.4);
}

TEST_CASE("psf build: optical models need a physical voxel size") {
  std::ostringstream log;
  const std::string msg = error_of([&] {
    build_psf(parse_psf_spec("widefield:1.2,0.52,1.33"), VoxelSize{1, 1, 1, "px"}, PsfBuildContext{}, log);
  });
  CHECK(contains(msg, "needs the voxel size in um"));
  CHECK(contains(msg, "gaussian:SXY,SZ"));
}

TEST_CASE("psf build: measured bead without voxel size is refused unless matched or given") {
  test::TempDir dir;
  // A bead: a small Gaussian blob, written without any voxel metadata.
  PsfGrid bead_grid;
  bead_grid.nz = 15;
  bead_grid.ny = bead_grid.nx = 21;
  Volume bead = gaussian_psf(bead_grid, 1.5, 2.0);
  bead.voxel = VoxelSize{1, 1, 1, "px"};
  const std::string plain = dir.file("bead_plain.tif");
  write_tiff(plain, bead);
  REQUIRE_FALSE(read_tiff_info(plain).has_z_spacing);

  std::ostringstream log;
  PsfBuildContext ctx;
  ctx.data_voxel_known = true;
  ctx.data_acquired_voxel = VoxelSize{0.4, 0.1, 0.1, "um"};
  const VoxelSize iso{0.1, 0.1, 0.1, "um"};
  const std::string msg = error_of([&] { build_psf(parse_psf_spec(plain), iso, ctx, log); });
  CHECK(contains(msg, "states no voxel size"));
  CHECK(contains(msg, "--psf-voxel"));

  // With --psf-voxel the bead is resampled onto the isotropic grid (and that is said).
  ctx.file_voxel = {0.4, 0.1, 0.1};
  const Volume r = build_psf(parse_psf_spec(plain), iso, ctx, log);
  CHECK(contains(log.str(), "resampling"));
  CHECK(r.voxel.z == 0.1);
  double sum = 0;
  for (float v : r.data) sum += v;
  CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));
  // Axial FWHM survives the resampling: 2.3548 * 2 planes * 0.4 um (5%: trilinear resampling).
  CHECK(psf_fwhm(r, 0) == doctest::Approx(2.3548 * 2 * 0.4).epsilon(0.05));

  // Neither data nor PSF state a voxel size: the PSF is taken on the data's acquisition grid.
  PsfBuildContext unknown;
  unknown.data_voxel_known = false;
  unknown.data_acquired_voxel = VoxelSize{4, 1, 1, "px"};
  std::ostringstream log2;
  build_psf(parse_psf_spec(plain), VoxelSize{1, 1, 1, "px"}, unknown, log2);
  CHECK(contains(log2.str(), "acquisition grid"));

  // A bead with metadata in another unit is refused.
  Volume nm = bead;
  nm.voxel = VoxelSize{400, 100, 100, "nm"};
  const std::string nm_path = dir.file("bead_nm.tif");
  write_tiff(nm_path, nm);
  PsfBuildContext c3;
  CHECK(contains(error_of([&] { build_psf(parse_psf_spec(nm_path), iso, c3, log); }), "in 'nm'"));
  // A missing file.
  CHECK(contains(error_of([&] { build_psf(parse_psf_spec(dir.file("nope.tif")), iso, c3, log); }), "cannot be opened"));
}

TEST_CASE("isotropic_psf_3d of an anisotropic Gaussian is the isotropic Gaussian of sigma_xy") {
  PsfGrid g;
  g.nz = 33;
  g.ny = g.nx = 17;
  g.voxel = VoxelSize{0.1, 0.1, 0.1, "um"};
  const Volume h = gaussian_psf(g, 2.0, 6.0);
  const Volume iso = isotropic_psf_3d(h);
  const Volume ref = gaussian_psf(g, 2.0, 2.0);
  // The profile is interpolated (Keys cubic) between integer radii; for a sigma-2 Gaussian the
  // interpolation error is O(h^3 f'''), measured 0.37% of the peak, and the renormalization to sum 1
  // changes values by less than that: tolerance 1% of the peak.
  float peak = 0;
  for (float v : ref.data) peak = std::max(peak, v);
  CHECK_CLOSE_ARRAYS("isotropic Gaussian", ref.data.data(), iso.data.data(), ref.size(), 0.01 * peak, 0.0);
  CHECK(psf_fwhm(iso, 0) == doctest::Approx(psf_fwhm(iso, 2)).epsilon(0.02));
}

TEST_CASE("subsampling factor from TIFF metadata is printed exactly") {
  test::TempDir dir;
  Volume v(5, 9, 11, 1.f);
  v.voxel = VoxelSize{0.4, 0.1, 0.1, "um"};
  const std::string path = dir.file("a.tif");
  write_tiff(path, v);
  const TiffInfo info = read_tiff_info(path);
  REQUIRE(info.has_z_spacing);
  const SubsamplingFactor s = determine_subsampling(info, 0, {}, path);
  CHECK(s.factor == doctest::Approx(4.0).epsilon(1e-12));
  CHECK(s.message == "subsampling factor S = 0.4000/0.1000 = 4.000000 (from TIFF voxel size)");
  CHECK(s.warning.empty());

  // A factor that is not a round number is printed with every digit it needs, never rounded.
  Volume w(5, 9, 11, 1.f);
  w.voxel = VoxelSize{0.35, 0.1, 0.1, "um"};
  write_tiff(dir.file("b.tif"), w);
  const SubsamplingFactor t = determine_subsampling(read_tiff_info(dir.file("b.tif")), 0, {}, "b.tif");
  CHECK(t.factor == doctest::Approx(3.5).epsilon(1e-9));
  CHECK(t.message == "subsampling factor S = 0.3500/0.1000 = 3.500000 (from TIFF voxel size)");
  CHECK(format_exact(10.0 / 3.0, 6) == "3.333333333333");
  CHECK(format_exact(0.0345) == "0.0345");

  // --subsample wins, stated, with a warning when it disagrees with the metadata.
  const SubsamplingFactor u = determine_subsampling(info, 5.0, {}, path);
  CHECK(u.factor == 5.0);
  CHECK(u.message == "subsampling factor S = 5.000000 (from --subsample)");
  CHECK(contains(u.warning, "differs from the voxel size ratio"));
  // --voxel overrides the file.
  const SubsamplingFactor o = determine_subsampling(info, 0, {0.6, 0.2, 0.2}, path);
  CHECK(o.message == "subsampling factor S = 0.6000/0.2000 = 3.000000 (from --voxel)");
}

TEST_CASE("subsampling factor: no metadata and no --subsample, or a factor below 1, are errors") {
  test::TempDir dir;
  Volume v(5, 9, 11, 1.f);
  v.voxel = VoxelSize{1, 1, 1, "px"};
  write_tiff(dir.file("plain.tif"), v);
  const TiffInfo info = read_tiff_info(dir.file("plain.tif"));
  REQUIRE_FALSE(info.has_z_spacing);
  const std::string msg = error_of([&] { determine_subsampling(info, 0, {}, "plain.tif"); });
  CHECK(contains(msg, "states no z spacing"));
  CHECK(contains(msg, "--subsample"));
  CHECK(determine_subsampling(info, 2.5, {}, "plain.tif").factor == 2.5);

  const std::string low = error_of([&] { determine_subsampling(info, 0.5, {}, "plain.tif"); });
  CHECK(contains(low, "below 1"));
  Volume fine(5, 9, 11, 1.f);
  fine.voxel = VoxelSize{0.05, 0.1, 0.1, "um"};
  write_tiff(dir.file("fine.tif"), fine);
  const std::string low2 = error_of([&] { determine_subsampling(read_tiff_info(dir.file("fine.tif")), 0, {}, "f"); });
  CHECK(contains(low2, "S = 0.5000"));
  CHECK(contains(low2, "below 1"));
}

TEST_CASE("number lists and noise specs") {
  CHECK(parse_number_list("0.4,0.1,0.1", 3, "--voxel", "Z,Y,X") == std::vector<double>{0.4, 0.1, 0.1});
  CHECK(contains(error_of([] { parse_number_list("0.4,0.1", 3, "--voxel", "Z,Y,X"); }), "2 values, 3 needed"));
  CHECK(contains(error_of([] { parse_number_list("0.4,x,1", 3, "--voxel", "Z,Y,X"); }), "'x' is not a number"));
  const NoiseSpec n = parse_noise_spec("poisson:50,read:2");
  CHECK(n.enabled);
  CHECK(n.camera.poisson);
  CHECK(n.camera.photons_per_unit == 50);
  CHECK(n.camera.read_sigma == 2);
  CHECK_FALSE(parse_noise_spec("none").enabled);
  CHECK(contains(error_of([] { parse_noise_spec("gauss:3"); }), "expected none | poisson:PHOTONS"));
  CHECK(contains(error_of([] { parse_noise_spec("poisson:-1"); }), "PHOTONS must be > 0"));
}

TEST_CASE("output sets are written all or nothing") {
  test::TempDir dir;
  auto text_file = [](const std::string& content) {
    return [content](const std::string& p) {
      std::FILE* f = std::fopen(p.c_str(), "w");
      REQUIRE(f != nullptr);
      std::fputs(content.c_str(), f);
      std::fclose(f);
    };
  };
  auto read = [](const std::string& p) {
    std::ifstream in(p);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  text_file("old")(dir.file("a.txt"));  // an earlier run's output
  // The third write fails (as on a full disk): no target is created or changed, nothing is left.
  const std::string msg = error_of([&] {
    write_all_or_nothing({{dir.file("a.txt"), text_file("new a")},
                          {dir.file("b.txt"), text_file("new b")},
                          {dir.file("c.txt"), [](const std::string&) { fail("disk full"); }}});
  });
  CHECK(contains(msg, "disk full"));
  CHECK(dir.entries() == std::vector<std::string>{"a.txt"});
  CHECK(read(dir.file("a.txt")) == "old");
  // All succeed: every target replaced, no temporaries left.
  write_all_or_nothing({{dir.file("a.txt"), text_file("new a")}, {dir.file("b.txt"), text_file("new b")}});
  auto names = dir.entries();
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"a.txt", "b.txt"});
  CHECK(read(dir.file("a.txt")) == "new a");
  CHECK(read(dir.file("b.txt")) == "new b");
}

TEST_CASE("hyperstack inputs: a command needs --channel/--frame where the file has several, and uses the one chosen") {
  test::TempDir dir;
  const std::string path = dir.file("two_channels.tif");
  test::write_imagej_hyperstack(path, 2, 6, 1, 12, 10);
  const std::string msg = error_of([&] { read_volume(path, "input"); });
  CHECK(contains(msg, "input '" + path + "' holds 2 channels: choose one with --channel 0..1"));
  const Volume second = read_volume(path, "input", nullptr, 2, TiffSelection{1, -1});
  REQUIRE(second.nz == 6);
  CHECK(second.at(3, 2, 1) == float(test::hyperstack_value(1, 3, 0, 2, 1)));
  CHECK(contains(error_of([&] { read_volume(path, "input", nullptr, 2, TiffSelection{2, -1}); }),
                 "channel 2 does not exist"));

  // A 3D stack whose planes the file calls channels (as tifffile writes a 3D array with imagej=True
  // and no axes): the refusal says how to fix the file; a real hyperstack's does not.
  const std::string mislabelled = dir.file("planes_as_channels.tif");
  test::write_imagej_hyperstack(mislabelled, 8, 1, 1, 12, 10);
  const std::string hint = error_of([&] { read_volume(mislabelled, "input"); });
  CHECK(contains(hint, "holds 8 channels (each channel and time point is a single plane: if the planes are z "
                       "slices, the file's metadata mislabels them; save it with axes ZYX"));
  CHECK(contains(hint, "choose one with --channel 0..7"));
  CHECK(!contains(msg, "mislabels"));

  const std::string frames = dir.file("three_frames.tif");
  test::write_imagej_hyperstack(frames, 1, 4, 3, 8, 8);
  CHECK(contains(error_of([&] { read_volume(frames, "input"); }), "3 time points: choose one with --frame 0..2"));

  // Through a command: deconv of channel 1 reads that channel (its output has its planes).
  DeconvOptions d;
  d.input = path;
  d.select.channel = 1;
  d.psf = "gaussian:1,1";
  d.iterations = 1;
  d.device = "cpu";
  d.output = dir.file("deconv.tif");
  d.quiet = true;
  CHECK(run_deconv(d).nz == 6);
  d.select.channel = -1;
  d.output = dir.file("refused.tif");
  CHECK(contains(error_of([&] { run_deconv(d); }), "--channel 0..1"));
  CHECK(!std::ifstream(d.output).good());

  // Where a command offers no choice for a file, the message says which ones do.
  const std::string no_choice = error_of([&] { read_volume(path, "ground truth", nullptr, 1, {}, false); });
  CHECK(contains(no_choice, "ground truth '" + path + "' holds 2 channels: this option takes a single volume"));
  CHECK(contains(no_choice, "preview --input"));
}

TEST_CASE("out-of-memory hints: the GPU's for CUDA allocation errors, the host's otherwise; other errors unchanged") {
  const OomHints hints{"use --device cpu", "restore a smaller region"};
  auto message = [&](const std::function<void()>& body) { return error_of([&] { with_oom_hint(body, hints); }); };
  const std::string gpu = message([] { fail("conv2d: CUDA error cudaErrorMemoryAllocation (out of memory)"); });
  CHECK(contains(gpu, "cudaErrorMemoryAllocation"));
  CHECK(contains(gpu, "\n  hint: use --device cpu"));
  const std::string host = message([] { fail("allocating 9 bytes of host memory: out of memory"); });
  CHECK(contains(host, "\n  hint: restore a smaller region"));
  CHECK(contains(message([] { throw std::bad_alloc(); }), "out of host memory\n  hint: restore a smaller region"));
  CHECK(message([] { fail("something else"); }) == "something else");
}
