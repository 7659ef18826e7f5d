// main.cpp: the `isonet` command line (CLI11). Each subcommand fills the options struct of its
// command (apps/cmd_*.h) and calls it; everything else lives in isonet_app_lib so tests can call
// the commands directly. Exit codes: 0 success, 1 isonet::Error ("isonet: error: <message>"),
// 2 usage errors found by CLI11.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <exception>
#include <string>

#include "apps/cmd_deconv.h"
#include "apps/cmd_demo.h"
#include "apps/cmd_eval.h"
#include "apps/cmd_info.h"
#include "apps/cmd_preview.h"
#include "apps/cmd_psf.h"
#include "apps/cmd_restore.h"
#include "apps/cmd_simulate.h"
#include "apps/cmd_train.h"
#include "apps/psf_spec.h"
#include "apps/version.h"
#include "kernels/error.h"

using namespace isonet;
using namespace isonet::app;

namespace {

const std::vector<std::string> kDevices = {"auto", "cpu", "cuda"};

void add_device(CLI::App* cmd, std::string& device) {
  cmd->add_option("--device", device, "auto (CUDA when a GPU is usable, else the CPU), cpu or cuda")
      ->check(CLI::IsMember(kDevices))
      ->capture_default_str();
}

void add_psf(CLI::App* cmd, std::string& psf, std::string& units, std::string& psf_voxel, int& psf_size, bool required) {
  auto* o = cmd->add_option("--psf", psf, std::string("PSF: a model or a bead TIFF; accepted forms:\n") + psf_spec_forms());
  if (required) o->required();
  cmd->add_option("--psf-units", units, "units of gaussian sigmas: px (lateral pixels, also along z) or um")
      ->check(CLI::IsMember({"px", "um"}))
      ->capture_default_str();
  cmd->add_option("--psf-voxel", psf_voxel, "Z,Y,X voxel size of a bead TIFF that states none (data units)");
  cmd->add_option("--psf-size", psf_size, "PSF grid size (odd) along every axis; 0 = from the PSF's extent")
      ->capture_default_str();
}

// --channel and --frame: which volume of an ImageJ hyperstack input to use.
void add_selection(CLI::App* cmd, TiffSelection& select) {
  cmd->add_option("--channel", select.channel, "channel of a multi-channel hyperstack input (0-based)");
  cmd->add_option("--frame", select.frame, "time point of a hyperstack input with several (0-based)");
}

// --conv and --math of train and restore (TrainerOptions::conv); run_* parse them again with a
// clear error.
void add_conv(CLI::App* cmd, std::string& conv) {
  cmd->add_option("--conv", conv,
                  "convolution algorithm: auto (the default: per layer, the CPU's measured cost model picks "
                  "direct or FFT; on CUDA direct for now), direct or fft (forced for every layer but the 1x1 "
                  "ones; a speed setting: the result is the same up to rounding)")
      ->check(CLI::IsMember({"auto", "direct", "fft"}))
      ->capture_default_str();
}

void add_math(CLI::App* cmd, std::string& math) {
  cmd->add_option("--math", math,
                  "arithmetic of the CUDA convolutions: fp32 (the default) or tf32 (tensor cores, like PyTorch's "
                  "allow_tf32; ~1e-3 relative rounding); ignored on the CPU, which computes in fp32 (logged once)")
      ->check(CLI::IsMember({"fp32", "tf32"}))
      ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"isonet: isotropic restoration of anisotropic 3D fluorescence microscopy (IsoNet, Weigert et al. 2017)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every command");
  app.set_version_flag("--version", [] {
    std::string text = version_text();
    text.pop_back();  // CLI11 ends the line itself
    return text;
  },
                       "print the version, the build (CUDA backend) and the usable CUDA devices, and exit");

  // train
  TrainOptions tr;
  auto* train = app.add_subcommand("train", "train IsoNet on one anisotropic volume (training pairs from its lateral planes)");
  train->add_option("--input", tr.inputs,
                    "anisotropic volume (TIFF, ZYX); several (--input A B ...) of the same sampling train one model")
      ->required();
  add_selection(train, tr.select);
  add_psf(train, tr.psf, tr.psf_units, tr.psf_voxel, tr.psf_size, true);
  train->add_option("--subsample", tr.subsample,
                    "axial subsampling factor S = z step / lateral pixel size (default: from the TIFF voxel size)");
  train->add_option("--voxel", tr.voxel, "Z,Y,X voxel size in um, overriding the TIFF's");
  train->add_option("--model", tr.model, "network: isonet2 or isonet1")
      ->check(CLI::IsMember({"isonet1", "isonet2"}))
      ->capture_default_str();
  train->add_option("--psf-mode", tr.psf_mode, "training kernel: split (h_split, the paper's IsoNet-2) or full (h_rot)")
      ->check(CLI::IsMember({"split", "full"}))
      ->capture_default_str();
  train->add_option("--interp", tr.interp, "upsampling of the training inputs (and default of restore): cubic or linear")
      ->check(CLI::IsMember({"cubic", "linear"}))
      ->capture_default_str();
  train->add_option("--steps", tr.steps, "total training steps")->capture_default_str();
  train->add_option("--batch", tr.batch, "patches per step")->capture_default_str();
  train->add_option("--patch", tr.patch, "patch size (multiple of 4)")->capture_default_str();
  train->add_option("--patches", tr.patches, "training pairs to generate (0 = 4096, fewer for patches above 64x64)")
      ->capture_default_str();
  train->add_option("--lr", tr.lr, "Adam learning rate")->capture_default_str();
  train->add_option("--dropout", tr.dropout, "dropout probability")->capture_default_str();
  train->add_option("--seed", tr.seed, "seed of weights, pairs, batches and dropout")->capture_default_str();
  add_device(train, tr.device);
  train->add_option("--checkpoint-every", tr.checkpoint_every, "write the checkpoint every K steps (0 = at the end only)")
      ->capture_default_str();
  train->add_flag("--resume", tr.resume, "continue from the checkpoint in --out (same settings)");
  train->add_option("--validation", tr.validation,
                    "fraction of the training pairs held out and scored (validation PSNR, no dropout); 0 = none")
      ->capture_default_str();
  train->add_option("--validate-every", tr.validate_every, "steps between validation scores (and one at the end)")
      ->capture_default_str();
  train->add_option("--best", tr.best, "model file for the weights with the best validation PSNR (needs --validation)");
  train->add_option("--loss-plot", tr.loss_plot, "PNG of the training PSNR per step (and the validation scores)");
  train->add_option("--out", tr.out, "model file (safetensors; also the checkpoint)")->required();
  add_conv(train, tr.conv);
  add_math(train, tr.math);
  train->add_flag("--record-steps", tr.record_steps,
                  "record the training step once and replay it (on CUDA one CUDA graph launch per step instead of "
                  "~100 kernel launches; the same results bit for bit; not yet verified on a GPU); no effect on the CPU");
  train->callback([&] { run_train(tr); });

  // restore
  RestoreOptions rs;
  std::vector<std::string> rs_inputs;
  std::string rs_output_dir;
  auto* restore = app.add_subcommand("restore", "restore isotropic resolution with a trained model");
  restore->add_option("--model", rs.model, "model file written by train")->required();
  restore->add_option("--input", rs_inputs, "anisotropic volume (TIFF, ZYX); several with --output-dir")->required();
  add_selection(restore, rs.select);
  restore->add_option("--output", rs.output, "restored volume (TIFF, z spacing = lateral pixel size)");
  restore->add_option("--output-dir", rs_output_dir, "existing folder for several inputs: DIR/<name>_iso.tif each");
  add_device(restore, rs.device);
  restore->add_option("--max-memory", rs.max_memory_mb, "working memory of the network in MB (slabs/tiles beyond)")
      ->capture_default_str();
  restore->add_option("--interp", rs.interp, "axial upsampling: cubic or linear (default: as trained)")
      ->check(CLI::IsMember({"cubic", "linear"}));
  restore->add_option("--fusion", rs.fusion, "fusion of the XZ and YZ predictions: mean or geometric (CSBDeep)")
      ->check(CLI::IsMember({"mean", "geometric"}))
      ->capture_default_str();
  restore->add_option("--batch", rs.batch, "slices per network call (at most)")->capture_default_str();
  restore->add_option("--preview", rs.preview, "also write a PNG preview of input and result");
  add_conv(restore, rs.conv);
  add_math(restore, rs.math);
  restore->callback([&] { run_restore_inputs(rs, rs_inputs, rs_output_dir); });

  // simulate
  SimulateOptions sm;
  int sim_psf_size = 0;
  std::string sim_psf_voxel;
  auto* simulate = app.add_subcommand("simulate", "synthetic phantom -> isotropic ground truth, anisotropic acquisition, PSF");
  simulate->add_option("--kind", sm.kind, "phantom: nuclei, membranes or nuclei+membranes")
      ->check(CLI::IsMember({"nuclei", "membranes", "nuclei+membranes"}))
      ->capture_default_str();
  simulate->add_option("--size", sm.size, "phantom size N (N^3 voxels)")->capture_default_str();
  add_psf(simulate, sm.psf, sm.psf_units, sim_psf_voxel, sim_psf_size, false);
  simulate->add_option("--subsample", sm.subsample, "axial subsampling factor S of the acquisition")->capture_default_str();
  simulate->add_option("--noise", sm.noise, "camera noise: none, poisson:PHOTONS[,read:SIGMA] or read:SIGMA");
  simulate->add_option("--pixel-size", sm.pixel_size, "lateral pixel size in um")->capture_default_str();
  simulate->add_option("--radius", sm.radius, "nuclei mean semi-axis in voxels (0 = automatic)")->capture_default_str();
  simulate->add_option("--seed", sm.seed, "phantom and noise seed")->capture_default_str();
  add_device(simulate, sm.device);
  simulate->add_option("--out-prefix", sm.out_prefix, "writes PREFIX_gt.tif, PREFIX_aniso.tif, PREFIX_psf.tif")->required();
  simulate->callback([&] {
    sm.psf_size = sim_psf_size;
    run_simulate(sm);
  });

  // eval
  EvalOptions ev;
  auto* eval = app.add_subcommand("eval", "PSNR and SSIM of a prediction against a ground truth (after the affine fit)");
  eval->add_option("--pred", ev.pred, "prediction (TIFF)")->required();
  eval->add_option("--gt", ev.gt, "ground truth (TIFF)")->required();
  eval->add_flag("--no-fit", ev.no_fit, "score as is, without the least-squares affine fit");
  eval->callback([&] { run_eval(ev); });

  // deconv
  DeconvOptions dc;
  auto* deconv = app.add_subcommand("deconv", "Richardson-Lucy deconvolution");
  deconv->add_option("--input", dc.input, "volume (TIFF)")->required();
  add_selection(deconv, dc.select);
  add_psf(deconv, dc.psf, dc.psf_units, dc.psf_voxel, dc.psf_size, true);
  deconv->add_option("--iterations", dc.iterations, "Richardson-Lucy iterations")->capture_default_str();
  deconv->add_option("--edge", dc.edge, "edge handling: reflect or masked")
      ->check(CLI::IsMember({"reflect", "masked"}))
      ->capture_default_str();
  add_device(deconv, dc.device);
  deconv->add_option("--output", dc.output, "deconvolved volume (TIFF)")->required();
  deconv->callback([&] { run_deconv(dc); });

  // psf
  PsfCommandOptions pc;
  std::string pc_units = "px";
  auto* psfcmd = app.add_subcommand("psf", "write a PSF and its rotated, isotropic and split 2D training kernels");
  add_psf(psfcmd, pc.psf, pc_units, pc.psf_voxel, pc.size, true);
  psfcmd->add_option("--voxel", pc.voxel, "Z,Y,X voxel size of the PSF grid in um")->capture_default_str();
  psfcmd->add_option("--size", pc.size, "grid size (odd) along every axis; 0 = from the PSF's extent");
  psfcmd->add_option("--out-prefix", pc.out_prefix, "writes PREFIX_psf.tif, PREFIX_rot.tif, PREFIX_iso.tif, PREFIX_split.tif")
      ->required();
  psfcmd->callback([&] {
    pc.psf_units = pc_units;
    run_psf(pc);
  });

  // preview
  PreviewOptions pv;
  auto* preview = app.add_subcommand("preview", "PNG of the central xy, xz and yz views (rows = volumes)");
  preview->add_option("--input", pv.input, "first volume (TIFF)")->required();
  add_selection(preview, pv.select);
  preview->add_option("--restored", pv.restored, "second row (TIFF)");
  preview->add_option("--gt", pv.gt, "third row (TIFF)");
  preview->add_option("--out", pv.out, "PNG file")->required();
  preview->callback([&] { run_preview(pv); });

  // demo
  DemoOptions dm;
  auto* demo = app.add_subcommand("demo", "simulate, train IsoNet-2, restore and compare with upsampling and Richardson-Lucy");
  demo->add_option("--size", dm.size, "phantom size N (default 96; 512, the paper's, with --full)");
  demo->add_option("--steps", dm.steps, "training steps (default 400; 4000 with --full)");
  demo->add_option("--batch", dm.batch, "patches per step (default 8; 32 with --full)");
  demo->add_option("--patch", dm.patch, "patch size (default 48; 64 with --full)");
  demo->add_option("--rl-iterations", dm.rl_iterations, "Richardson-Lucy iterations (default 20)");
  demo->add_option("--lr", dm.lr, "Adam learning rate")->capture_default_str();
  demo->add_option("--noise", dm.noise, "camera noise of the acquisition (see simulate)");
  demo->add_option("--seed", dm.seed, "seed")->capture_default_str();
  add_device(demo, dm.device);
  demo->add_option("--out-dir", dm.out_dir, "directory for every output")->capture_default_str();
  demo->add_option("--preview", dm.preview, "preview PNG (default: OUT_DIR/preview.png)");
  demo->add_flag("--full", dm.full, "the paper's scale (for a GPU)");
  demo->callback([&] { run_demo(dm); });

  // info
  InfoOptions info;
  auto* infocmd = app.add_subcommand("info", "what a TIFF volume or a model file holds (shape, voxel size and factor S; "
                                             "model settings and scores)");
  infocmd->add_option("files", info.files, "TIFF volumes and/or model files")->required();
  infocmd->callback([&] { run_info(info, std::cout); });

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  } catch (const Error& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "isonet: error: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "isonet: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
