// test_app_device.cpp: `--device cuda` where no GPU can be used is a clear error that names the
// problem and leaves no output file (nor the demo's output directory) behind. Through the library
// on machines without a usable GPU, and through the `isonet` program everywhere, GPU machines
// included: it runs with CUDA_VISIBLE_DEVICES set empty, so the CUDA runtime sees no device.
// (A separate program from test_cuda_app.cpp on purpose: CTest reports a program that prints the
// GPU skip marker as skipped whatever its other cases did, which would hide a failure here.)
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "apps/cmd_deconv.h"
#include "apps/cmd_demo.h"
#include "apps/cmd_restore.h"
#include "apps/cmd_simulate.h"
#include "apps/cmd_train.h"
#include "apps/version.h"
#include "imaging/tiff.h"
#include "nn/model_file.h"
#include "test_util.h"

using namespace isonet;
using namespace isonet::app;

namespace {

using test::contains;
using test::error_of;

// The one message select_device gives for --device cuda without a usable GPU (or a CPU-only build).
bool names_the_problem(const std::string& msg) {
  return contains(msg, "--device cuda: ") &&
         (contains(msg, "no usable CUDA device found") || contains(msg, "built without the CUDA backend"));
}

// The input files every case starts from: a small acquisition and a model for it.
struct Inputs {
  std::string volume, model;
  std::vector<std::string> entries;  // the directory's entries after writing them
};

Inputs make_inputs(const test::TempDir& dir) {
  Volume v(6, 24, 24);
  v.data = test::random_vector(v.size(), 3, 1.f, 2.f);
  v.voxel = VoxelSize{0.4, 0.1, 0.1, "um"};
  Inputs in;
  in.volume = dir.file("in.tif");
  write_tiff(in.volume, v);
  Model m = Model::create(Architecture::IsoNet2, 5);
  m.metadata.subsampling = 4.0;
  in.model = dir.file("m.safetensors");
  save_model(in.model, m);
  in.entries = dir.entries();
  std::sort(in.entries.begin(), in.entries.end());
  return in;
}

std::vector<std::string> sorted_entries(const test::TempDir& dir) {
  std::vector<std::string> e = dir.entries();
  std::sort(e.begin(), e.end());
  return e;
}

using test::read_text;

}  // namespace

TEST_CASE("device: --device cuda without a usable GPU is a clear error and writes nothing (library)") {
  if (cuda_available()) {
    MESSAGE("a GPU is usable here: the no-GPU path is checked through the program (next case)");
    return;
  }
  test::TempDir dir;
  const Inputs in = make_inputs(dir);

  TrainOptions t;
  t.inputs = {in.volume};
  t.psf = "gaussian:1,3";
  t.steps = 2;
  t.batch = 2;
  t.patch = 16;
  t.device = "cuda";
  t.out = dir.file("trained.safetensors");
  t.loss_plot = dir.file("loss.png");
  t.quiet = true;
  t.progress = nullptr;
  const std::string train_msg = error_of([&] { run_train(t); });
  INFO("train: " << train_msg);
  CHECK(names_the_problem(train_msg));

  RestoreOptions r;
  r.model = in.model;
  r.input = in.volume;
  r.output = dir.file("restored.tif");
  r.device = "cuda";
  r.quiet = true;
  const std::string restore_msg = error_of([&] { run_restore(r); });
  INFO("restore: " << restore_msg);
  CHECK(names_the_problem(restore_msg));

  SimulateOptions s;
  s.size = 16;
  s.psf = "gaussian:1,3";
  s.subsample = 4;
  s.device = "cuda";
  s.out_prefix = dir.file("sim");
  s.quiet = true;
  const std::string simulate_msg = error_of([&] { run_simulate(s); });
  INFO("simulate: " << simulate_msg);
  CHECK(names_the_problem(simulate_msg));

  DeconvOptions d;
  d.input = in.volume;
  d.psf = "gaussian:1,3";
  d.iterations = 2;
  d.device = "cuda";
  d.output = dir.file("deconv.tif");
  d.quiet = true;
  const std::string deconv_msg = error_of([&] { run_deconv(d); });
  INFO("deconv: " << deconv_msg);
  CHECK(names_the_problem(deconv_msg));

  DemoOptions m;
  m.size = 16;
  m.steps = 2;
  m.device = "cuda";
  m.out_dir = dir.file("demo");
  m.quiet = true;
  const std::string demo_msg = error_of([&] { run_demo(m); });
  INFO("demo: " << demo_msg);
  CHECK(names_the_problem(demo_msg));

  // Nothing was written: the directory holds the inputs only (no model, volume, plot or demo dir).
  CHECK(sorted_entries(dir) == in.entries);
}

TEST_CASE("device: the isonet program with no visible GPU refuses --device cuda (exit 1, message, no output)") {
  const std::string prog = test::isonet_program();
  if (prog.empty()) {
    MESSAGE("the isonet program is not built next to this test; skipping");
    return;
  }
  test::TempDir dir;
  const Inputs in = make_inputs(dir);
  const std::string err = dir.file("err.txt");
  // Runs the program with no CUDA device visible; returns its exit code. The error file is removed
  // again after reading so that the directory listing below compares inputs only.
  std::string message;
  auto run = [&](const std::string& args) {
    const std::string cmd = "CUDA_VISIBLE_DEVICES= " + prog + " " + args + " > /dev/null 2> " + err;
    const int status = std::system(cmd.c_str());
    message = read_text(err);
    std::remove(err.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  };
  CHECK(run("train --input " + in.volume + " --psf gaussian:1,3 --steps 2 --batch 2 --patch 16 --device cuda --out " +
            dir.file("trained.safetensors") + " --loss-plot " + dir.file("loss.png")) == 1);
  INFO("train: " << message);
  CHECK(message.rfind("isonet: error: --device cuda: ", 0) == 0);
  CHECK(names_the_problem(message));

  CHECK(run("restore --model " + in.model + " --input " + in.volume + " --output " + dir.file("restored.tif") +
            " --device cuda") == 1);
  INFO("restore: " << message);
  CHECK(names_the_problem(message));

  CHECK(run("demo --size 16 --steps 2 --device cuda --out-dir " + dir.file("demo")) == 1);
  INFO("demo: " << message);
  CHECK(names_the_problem(message));

  // --device auto falls back to the CPU instead (one log line), so only an explicit cuda fails.
  CHECK(run("restore --model " + in.model + " --input " + in.volume + " --output " + dir.file("auto.tif") +
            " --device auto") == 0);
  std::remove(dir.file("auto.tif").c_str());

  CHECK(sorted_entries(dir) == in.entries);
}

TEST_CASE("device: --version names the build and the usable CUDA devices, or why there are none") {
  // The library's answer on this machine: a reason exactly when no device is usable.
  const std::string text = version_text();
  INFO(text);
  CHECK(text.rfind("isonet ", 0) == 0);
  CHECK(contains(text, built_with_cuda() ? "CUDA backend (CUDA " : "no CUDA backend"));
  if (cuda_device_count() == 0) {
    CHECK(!cuda_unavailable_reason().empty());
    CHECK(contains(text, "CUDA devices: none usable (" + cuda_unavailable_reason() + ")"));
  } else {
    CHECK(cuda_unavailable_reason().empty());
    CHECK(contains(text, "  0: " + cuda_device_description(0)));
    CHECK(contains(cuda_device_description(0), "compute capability "));
  }
  CHECK_THROWS_AS(cuda_device_description(cuda_device_count()), Error);

  // The program, with no device visible (GPU machines included): exit 0 and a reason.
  const std::string prog = test::isonet_program();
  if (prog.empty()) {
    MESSAGE("the isonet program is not built next to this test; skipping its half");
    return;
  }
  test::TempDir dir;
  const std::string out = dir.file("version.txt");
  const int status = std::system(("CUDA_VISIBLE_DEVICES= " + prog + " --version > " + out + " 2>&1").c_str());
  const std::string printed = read_text(out);
  INFO(printed);
  CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
  CHECK(printed.rfind("isonet ", 0) == 0);
  CHECK(contains(printed, "\nbuild: "));
  CHECK(contains(printed, "\nCUDA devices: none usable ("));
}
