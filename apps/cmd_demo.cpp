// cmd_demo.cpp: `isonet demo` (see cmd_demo.h).
#include "apps/cmd_demo.h"

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ostream>

#include "apps/cmd_deconv.h"
#include "apps/cmd_eval.h"
#include "apps/cmd_preview.h"
#include "apps/cmd_restore.h"
#include "apps/cmd_simulate.h"
#include "apps/cmd_train.h"
#include "apps/common.h"
#include "imaging/resample.h"
#include "imaging/tiff.h"
#include "kernels/device.h"
#include "kernels/error.h"
#include "nn/model_file.h"

namespace isonet::app {
namespace {

void make_dir(const std::string& dir) {
  if (mkdir(dir.c_str(), 0755) == 0 || errno == EEXIST) {
    struct stat st {};
    ISONET_CHECK(stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode), "demo: '", dir, "' exists and is not a directory");
    return;
  }
  fail("demo: cannot create the output directory '", dir, "': ", std::strerror(errno));
}

}  // namespace

DemoResult run_demo(const DemoOptions& opt) {
  std::ostream& out = report_stream(opt.quiet);
  const auto t0 = std::chrono::steady_clock::now();
  const int size = opt.size > 0 ? opt.size : (opt.full ? 512 : 96);
  const long steps = opt.steps > 0 ? opt.steps : (opt.full ? 4000 : 400);
  const int batch = opt.batch > 0 ? opt.batch : (opt.full ? 32 : 8);
  const int patch = opt.patch > 0 ? opt.patch : (opt.full ? 64 : 48);
  const int rl_iterations = opt.rl_iterations > 0 ? opt.rl_iterations : 20;
  const double S = 8.0;
  const std::string psf = "gaussian:2,8";
  // The device first: asking for one that is not there must leave no output directory behind.
  const Device device = select_device(opt.device);
  const std::string dev = device_name(device);
  make_dir(opt.out_dir);
  const std::string dir = opt.out_dir + "/";
  out << "demo: " << size << "^3 nuclei, PSF " << psf << " px, S = 8, IsoNet-2 (split PSF), " << steps
      << " steps of batch " << batch << " (" << patch << "x" << patch << "), device " << dev << ", into " << dir
      << "\n\n== simulate\n";
  out.flush();

  SimulateOptions so;
  so.kind = "nuclei";
  so.size = size;
  so.psf = psf;
  so.subsample = S;
  so.noise = opt.noise;
  // Nuclei a little larger than the axial blur (the paper: radius ~18.6 px against sigma_z = 8 at
  // 512^3); at small sizes the default radius (4.5 px) would be swallowed whole by the PSF.
  so.radius = opt.radius > 0 ? opt.radius : std::max(8.0, 0.0363 * size);
  so.seed = opt.seed;
  so.device = dev;
  so.out_prefix = dir + "nuclei";
  so.quiet = opt.quiet;
  const SimulateResult sim = run_simulate(so);

  out << "\n== train\n";
  TrainOptions to;
  to.inputs = {sim.acquisition_path};
  to.psf = psf;
  to.model = "isonet2";
  to.psf_mode = "split";
  to.steps = steps;
  to.batch = batch;
  to.patch = patch;
  to.lr = opt.lr;
  to.seed = opt.seed;
  to.device = dev;
  to.checkpoint_every = 0;
  to.out = dir + "model.safetensors";
  to.loss_plot = dir + "loss.png";
  to.quiet = opt.quiet;
  to.progress = opt.quiet ? nullptr : stderr;
  const TrainResult tr = run_train(to);

  out << "\n== restore\n";
  RestoreSettings rs;
  rs.progress = to.progress;
  rs.device = device;
  rs.interp = Interp::Cubic;
  const Volume restored = restore_volume(tr.model, sim.acquisition, rs, out);
  write_tiff(dir + "restored.tif", restored);

  out << "\n== baselines\n";
  const Volume upsampled = upsample_axial(sim.acquisition, S, Interp::Cubic);
  write_tiff(dir + "upsampled.tif", upsampled);
  out << "cubic upsampling: " << upsampled.shape_str() << "\n";
  const Volume deconv = deconvolve_volume(upsampled, sim.psf, rl_iterations, "reflect", dev);
  write_tiff(dir + "deconv.tif", deconv);
  out << "Richardson-Lucy: " << rl_iterations << " iterations on the upsampled volume with the 3D PSF\n";

  out << "\n== scores against the isotropic ground truth\n";
  DemoResult r;
  const std::pair<const char*, const Volume*> methods[] = {
      {"upsampled (cubic)", &upsampled}, {"Richardson-Lucy", &deconv}, {"IsoNet-2", &restored}};
  for (const auto& m : methods) {
    const EvalResult e = evaluate(*m.second, sim.ground_truth, true, out);
    r.rows.push_back({m.first, e.scores.psnr, e.scores.ssim});
  }
  char line[160];
  out << "method                 PSNR (dB)   SSIM\n";
  for (const auto& row : r.rows) {
    std::snprintf(line, sizeof line, "%-22s %9.2f   %.4f\n", row.method.c_str(), row.psnr, row.ssim);
    out << line;
  }
  out << "(after the least-squares affine fit of each volume to the ground truth, as CSBDeep's normalize_minmse)\n";

  const std::string preview = opt.preview.empty() ? dir + "preview.png" : opt.preview;
  write_preview(preview, {&sim.acquisition, &upsampled, &deconv, &restored, &sim.ground_truth});
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  out << "\nwrote " << dir << "{nuclei_aniso,nuclei_gt,nuclei_psf,upsampled,deconv,restored}.tif, model.safetensors, "
      << "loss.png and the preview " << preview << " (rows: acquisition, upsampled, Richardson-Lucy, IsoNet-2, ground truth; columns: xy, "
      << "xz, yz)\ndemo: " << r.seconds << " s in total\n";
  return r;
}

}  // namespace isonet::app
