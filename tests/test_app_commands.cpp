// test_app_commands.cpp: the smaller commands (psf, eval, preview, deconv), the progress line,
// and the `isonet` program's exit codes and error format, bad option values included (when the
// program is built next to this test, as in a normal build tree).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>

#include "apps/cmd_deconv.h"
#include "apps/cmd_eval.h"
#include "apps/cmd_info.h"
#include "apps/cmd_preview.h"
#include "apps/cmd_psf.h"
#include "apps/progress.h"
#include "imaging/png_image.h"
#include "imaging/psf.h"
#include "imaging/tiff.h"
#include "kernels/error.h"
#include "nn/model_file.h"
#include "libtiff_test_util.h"
#include "test_util.h"

using namespace isonet;
using namespace isonet::app;

namespace {

using test::contains;
using test::error_of;

// Random positive volume of the given shape and voxel size.
Volume random_volume(int nz, int ny, int nx, VoxelSize voxel, uint64_t seed) {
  Volume v(nz, ny, nx);
  v.data = test::random_vector(v.size(), seed, 0.f, 1.f);
  v.voxel = voxel;
  return v;
}

using test::read_text;

}  // namespace

TEST_CASE("psf command: 3D PSF and the 2D training kernels with rows = z") {
  test::TempDir dir;
  PsfCommandOptions o;
  o.psf = "gaussian:2,6";
  o.voxel = "0.3,0.1,0.1";
  o.out_prefix = dir.file("g");
  o.quiet = true;
  const PsfCommandResult r = run_psf(o);
  // On the anisotropic grid sigma_z = 6 lateral px = 2 z voxels: 2*8+1 planes; FWHM 2.3548*0.6 um
  // (5%: a sampled Gaussian with linear-interpolated half-maximum crossings).
  CHECK(r.psf.nz == 17);
  CHECK(r.fwhm_um[0] == doctest::Approx(2.3548 * 0.6).epsilon(0.05));
  CHECK(r.fwhm_um[2] == doctest::Approx(2.3548 * 0.2).epsilon(0.05));
  // Kernels on the isotropic 0.1 um grid: h_rot is [1, 49, 17] (rows = z: 4*6*2+1 rows).
  CHECK(r.rotated.nz == 1);
  CHECK(r.rotated.ny == 49);
  CHECK(r.rotated.nx == 17);
  CHECK(r.split.ny == r.rotated.ny);
  for (const char* suffix : {"_psf.tif", "_rot.tif", "_iso.tif", "_split.tif"}) {
    const Volume back = read_tiff(o.out_prefix + suffix);
    double sum = 0;
    for (float v : back.data) sum += v;
    CHECK(sum == doctest::Approx(1.0).epsilon(1e-4));  // every kernel sums to 1 (float sums)
  }
  // h_split's row profile is wider than its column profile (the extra z blur).
  const Volume& s = r.split;
  const int cy = s.ny / 2, cx = s.nx / 2;
  CHECK(s.at(0, cy + 3, cx) > s.at(0, cy, cx + 3));
  o.size = 20;
  CHECK(contains(error_of([&] { run_psf(o); }), "must be odd"));
}

TEST_CASE("eval: scores, z-geometry crop and lateral mismatch") {
  test::TempDir dir;
  const VoxelSize iso{0.1, 0.1, 0.1, "um"};
  const Volume gt = random_volume(12, 10, 9, iso, 1);
  // An affine copy scores perfectly after the fit; without it, not.
  Volume affine = gt;
  for (auto& v : affine.data) v = 3.f * v + 2.f;
  std::ostringstream out;
  const EvalResult fit = evaluate(affine, gt, true, out);
  CHECK(fit.scores.psnr > 100);
  CHECK(fit.scores.ssim == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(evaluate(affine, gt, false, out).scores.psnr < 10);

  // More planes on the same z grid (a restored volume): compared on the common planes, said so.
  Volume longer(14, 10, 9);
  longer.voxel = iso;
  std::copy(gt.data.begin(), gt.data.end(), longer.data.begin());
  std::ostringstream note;
  const EvalResult crop = evaluate(longer, gt, true, note);
  CHECK(crop.cropped);
  CHECK(crop.planes == 12);
  CHECK(crop.scores.psnr > 100);
  CHECK(contains(note.str(), "comparing the first 12 planes"));

  // An anisotropic acquisition against the isotropic ground truth: an error saying what to do.
  const Volume aniso = random_volume(3, 10, 9, VoxelSize{0.4, 0.1, 0.1, "um"}, 2);
  CHECK(contains(error_of([&] { evaluate(aniso, gt, true, out); }), "sampled differently along z"));
  const Volume wide = random_volume(12, 10, 8, iso, 3);
  CHECK(contains(error_of([&] { evaluate(wide, gt, true, out); }), "differ laterally"));

  write_tiff(dir.file("gt.tif"), gt);
  write_tiff(dir.file("p.tif"), affine);
  EvalOptions o;
  o.pred = dir.file("p.tif");
  o.gt = dir.file("gt.tif");
  o.quiet = true;
  CHECK(run_eval(o).scores.psnr > 100);
  o.gt = dir.file("missing.tif");
  CHECK(contains(error_of([&] { run_eval(o); }), "cannot be opened"));
}

TEST_CASE("preview: rows = volumes, axial views at physical aspect") {
  test::TempDir dir;
  const Volume aniso = random_volume(5, 30, 40, VoxelSize{0.4, 0.1, 0.1, "um"}, 4);
  const Volume iso = random_volume(17, 30, 40, VoxelSize{0.1, 0.1, 0.1, "um"}, 5);
  const Gray8 img = render_preview({&aniso, &iso});
  // Columns: xy (40 wide), xz (40 wide), yz (30 wide), 4-pixel gaps; rows: xy height 30 (the
  // tallest panel of each row is the xy one, since the axial views show (5-1)*4+1 = 17 rows).
  CHECK(img.width == 40 + 4 + 40 + 4 + 30);
  CHECK(img.height == 30 + 4 + 30);
  const std::string png = dir.file("p.png");
  write_preview(png, {&aniso, &iso});
  CHECK(read_png_gray(png).width == img.width);
  const Volume other = random_volume(5, 31, 40, VoxelSize{0.4, 0.1, 0.1, "um"}, 6);
  CHECK(contains(error_of([&] { render_preview({&aniso, &other}); }), "differ laterally"));
}

TEST_CASE("deconv: Richardson-Lucy sharpens a blurred bead, PSF on the data's grid") {
  test::TempDir dir;
  // A point blurred by the PSF; RL must concentrate it again (peak up).
  PsfGrid g;
  g.nz = 9;
  g.ny = g.nx = 13;
  g.voxel = VoxelSize{0.2, 0.1, 0.1, "um"};
  const Volume psf = gaussian_psf(g, 1.5, 1.0);  // sigma_z = 1 z voxel = 2 lateral px
  Volume img(15, 21, 21, 0.f);
  img.voxel = g.voxel;
  for (int z = 0; z < 9; ++z)
    for (int y = 0; y < 13; ++y)
      for (int x = 0; x < 13; ++x) img.at(z + 3, y + 4, x + 4) = 100.f * psf.at(z, y, x);
  write_tiff(dir.file("bead.tif"), img);
  DeconvOptions o;
  o.input = dir.file("bead.tif");
  o.output = dir.file("rl.tif");
  o.psf = "gaussian:1.5,2";  // px: sigma_z = 2 lateral px = 1 z voxel on this grid
  o.iterations = 30;
  o.device = "cpu";
  o.quiet = true;
  const Volume r = run_deconv(o);
  float peak_in = 0, peak_out = 0;
  for (float v : img.data) peak_in = std::max(peak_in, v);
  for (float v : r.data) peak_out = std::max(peak_out, v);
  CHECK(peak_out > 3 * peak_in);
  CHECK(r.at(7, 10, 10) == peak_out);  // the bead's centre
  CHECK(read_tiff(o.output).voxel.z == doctest::Approx(0.2).epsilon(1e-6));
}

TEST_CASE("info: a volume's shape, voxel size and factor S; a hyperstack's choices; a model's settings and scores") {
  test::TempDir dir;
  Volume v = random_volume(6, 9, 11, VoxelSize{0.4, 0.1, 0.1, "um"}, 3);
  write_tiff(dir.file("v.tif"), v);
  const std::string tif = describe_file(dir.file("v.tif"));
  INFO(tif);
  CHECK(contains(tif, "ImageJ TIFF, float32, uncompressed"));
  CHECK(contains(tif, "6 planes of 9 x 11 (Z, Y, X)"));
  CHECK(contains(tif, "subsampling factor S = 0.4000/0.1000 = 4.000000 (from TIFF voxel size): what train takes"));

  test::write_imagej_hyperstack(dir.file("h.tif"), 2, 4, 3, 8, 8);
  const std::string hyper = describe_file(dir.file("h.tif"));
  INFO(hyper);
  CHECK(contains(hyper, "4 planes of 8 x 8"));
  CHECK(contains(hyper, "2 channel(s) x 3 time point(s): choose one volume with --channel 0..1 --frame 0..2"));
  CHECK(contains(hyper, "S = 0.5000/0.1000 = 5.000000"));
  CHECK(!contains(hyper, "note:"));
  // Every channel a single plane: most likely a z stack labelled wrongly; info says how to fix it.
  test::write_imagej_hyperstack(dir.file("c.tif"), 7, 1, 1, 8, 8);
  CHECK(contains(describe_file(dir.file("c.tif")),
                 "  note: each channel and time point is a single plane: if the planes are z slices, the "
                 "file's metadata mislabels them"));

  Volume plain = random_volume(3, 5, 5, VoxelSize{1, 1, 1, "px"}, 4);
  write_tiff(dir.file("plain.tif"), plain);
  const std::string uncalibrated = describe_file(dir.file("plain.tif"));
  CHECK(contains(uncalibrated, "voxel size: not stated"));
  CHECK(contains(uncalibrated, "train needs --subsample: "));
  CHECK(contains(uncalibrated, "states no z spacing"));

  // A model with a training history and validation scores, as train writes them.
  Model m = Model::create(Architecture::IsoNet1, 2);
  m.steps = 3;
  m.metadata.psf = "gaussian sigma_xy=1 px sigma_z=3 px";
  m.metadata.psf_mode = "split";
  m.metadata.subsampling = 4.0;
  m.metadata.extra_json = R"({"train":{"batch":8,"patch":32,"validation":0.1},"loss_history":[-20.0,-21.0,-23.0],)"
                          R"("validation_history":[[2,25.5],[3,25.25]]})";
  save_model(dir.file("m.safetensors"), m, /*with_optimizer=*/false);
  const std::string model = describe_file(dir.file("m.safetensors"));
  INFO(model);
  CHECK(contains(model, "isonet model file, isonet1 (57283 parameters)"));
  CHECK(contains(model, "trained 3 steps (no Adam state"));
  CHECK(contains(model, "PSF: gaussian sigma_xy=1 px sigma_z=3 px, split; subsampling factor S = 4.000000"));
  CHECK(contains(model, "training: batch 8 patch 32 validation 0.1"));
  CHECK(contains(model, "training PSNR over the last 3 steps: 21.33 dB"));
  CHECK(contains(model, "validation PSNR: best 25.50 dB at step 2, last 25.25 dB at step 3 (2 scores)"));

  // Anything else is refused naming the file; run_info stops at it.
  std::ofstream(dir.file("notes.txt")) << "not an image";
  CHECK(contains(error_of([&] { describe_file(dir.file("notes.txt")); }),
                 "'" + dir.file("notes.txt") + "' is neither a TIFF nor an isonet model file"));
  CHECK(contains(error_of([&] { describe_file(dir.file("missing.tif")); }), "cannot be opened"));
  std::ostringstream out;
  InfoOptions io;
  io.files = {dir.file("v.tif"), dir.file("notes.txt"), dir.file("m.safetensors")};
  CHECK_THROWS_AS(run_info(io, out), Error);
  CHECK(out.str() == tif);
}

TEST_CASE("progress line format") {
  CHECK(TrainingProgress::format_line(120, 1000, -24.3125, 38.25, 83) ==
        "step 120/1000  loss -24.3125  PSNR 24.31 dB  38.2 patches/s  ETA 1:23");
  CHECK(TrainingProgress::format_duration(3725) == "1:02:05");
  CHECK(TrainingProgress::format_duration(NAN) == "?");
  CHECK(WorkProgress::format_line("restore", 300, 1024, "slices", 151.46, 4.8) ==
        "restore: 300/1024 slices  151.5 slices/s  ETA 0:05");
}

TEST_CASE("isonet program: exit codes and error format") {
  const std::string prog = test::isonet_program();
  if (prog.empty()) {
    MESSAGE("the isonet program is not built next to this test; skipping the exit-code checks");
    return;
  }
  test::TempDir dir;
  auto run = [&](const std::string& args) {
    const std::string cmd = prog + " " + args + " > " + dir.file("out.txt") + " 2> " + dir.file("err.txt");
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  CHECK(run("--help") == 0);
  CHECK(contains(read_text(dir.file("out.txt")), "restore"));
  CHECK(run("train --help") == 0);
  CHECK(contains(read_text(dir.file("out.txt")), "--subsample"));
  CHECK(run("train --input x.tif") == 2);  // --psf and --out missing: a usage error
  CHECK(run("restore --bogus") == 2);
  CHECK(run("info") == 2);  // no file: a usage error
  CHECK(run("info " + dir.file("none.tif")) == 1);
  CHECK(run("eval --pred " + dir.file("none.tif") + " --gt " + dir.file("none.tif")) == 1);
  const std::string err = read_text(dir.file("err.txt"));
  CHECK(err.rfind("isonet: error: ", 0) == 0);
  CHECK(contains(err, "cannot be opened"));
  CHECK(run("psf --psf gauss:1,2 --out-prefix " + dir.file("p")) == 1);
  CHECK(contains(read_text(dir.file("err.txt")), "accepted forms"));
  // A bad --math is a usage error naming the option and the accepted values, before any work:
  // no model file.
  CHECK(run("train --input " + dir.file("none.tif") + " --psf gaussian:1,3 --math bogus --out " +
            dir.file("m.safetensors")) == 2);
  const std::string math_err = read_text(dir.file("err.txt"));
  CHECK(contains(math_err, "--math"));
  CHECK(contains(math_err, "bogus"));
  CHECK(contains(math_err, "tf32"));
  CHECK(run("train --help") == 0);
  CHECK(contains(read_text(dir.file("out.txt")), "--math"));
  const std::vector<std::string> names = dir.entries();
  CHECK(std::find(names.begin(), names.end(), "m.safetensors") == names.end());

  // Restoring with another interpolation than the model was trained with works and says so.
  REQUIRE(run("simulate --size 32 --psf gaussian:1,3 --subsample 4 --out-prefix " + dir.file("s")) == 0);
  REQUIRE(run("train --input " + dir.file("s_aniso.tif") + " --psf gaussian:1,3 --steps 2 --batch 2 --patch 16 "
              "--patches 8 --device cpu --out " + dir.file("s.safetensors")) == 0);
  CHECK(run("restore --model " + dir.file("s.safetensors") + " --input " + dir.file("s_aniso.tif") + " --output " +
            dir.file("r.tif") + " --device cpu --interp linear") == 0);
  CHECK(contains(read_text(dir.file("out.txt")), "warning: upsampling with linear interpolation"));
  CHECK(run("restore --model " + dir.file("s.safetensors") + " --input " + dir.file("s_aniso.tif") + " --output " +
            dir.file("r.tif") + " --device cpu") == 0);
  CHECK_FALSE(contains(read_text(dir.file("out.txt")), "warning: upsampling"));
}
