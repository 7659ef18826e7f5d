// cmd_train.h: `isonet train`: trains IsoNet-1/IsoNet-2 on one anisotropic volume (paper eq. 2:
// lateral planes blurred by the rotated or split PSF, decimated along the axis that plays z by S
// and upsampled back, as inputs; the planes themselves as targets).
//
// Steps: read the volume (3D, finite); the subsampling factor S from --subsample, --voxel or the
// TIFF voxel size, printed exactly; the 3D PSF on the isotropic grid of the lateral pixel size;
// its training kernel (split or full, XZ section, rows = z); training pairs (imaging/
// training_pairs.h, both plane orientations); then --steps Adam steps on batches drawn without
// replacement within epochs of a seeded permutation (keyed on seed and epoch, so a resumed run
// draws the same batches as an uninterrupted one). Checkpoints (weights, Adam state, step count
// and the loss history) go atomically to --out every --checkpoint-every steps and at the end;
// --resume continues from --out after checking that every setting matches.
//
// Validation (--validation F > 0, as CSBDeep's validation split): the last round(F * pairs) of the
// training pairs (drawn at random positions, so a random subset) are held out of the batches; every
// --validate-every steps and at the end the network (no dropout) is scored on them with the loss's
// per-patch PSNR, printed and kept in the model file. --best FILE receives (atomically) the weights
// of the best score so far, for data small enough that longer training starts to fit them. The
// held-out pairs come from the same planes as the others: they measure fitting, not generalization
// to other volumes.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "apps/loss_plot.h"
#include "apps/subsampling.h"
#include "imaging/tiff.h"
#include "nn/model.h"

namespace isonet::app {

struct TrainOptions {
  std::vector<std::string> inputs;  // one volume, or several of the same sampling (S, pixel size)
  TiffSelection select;      // --channel / --frame of hyperstack inputs
  std::string psf;
  std::string psf_units = "px";
  std::string psf_voxel;     // Z,Y,X of a measured PSF file without metadata
  int psf_size = 0;          // 0: auto
  double subsample = 0;      // 0: from --voxel or the TIFF
  std::string voxel;         // Z,Y,X override of the input's voxel size ("" = from the TIFF)
  std::string model = "isonet2";
  std::string psf_mode = "split";  // split | full
  std::string interp = "cubic";    // upsample-back of the pairs (and default of restore)
  long steps = 2000;         // total steps (a resumed run continues up to this many)
  int batch = 16;
  int patch = 64;
  int patches = 0;           // training pairs; 0: default_patches(patch)
  double lr = 5e-4;          // not the paper's 5e-3, at which IsoNet-2 collapses (nn/README.md)
  float dropout = 0.2f;
  uint64_t seed = 0;
  std::string device = "auto";
  std::string conv = "auto";    // --conv: auto | direct | fft (TrainerOptions::conv.algo; not a model setting)
  std::string math = "fp32";    // --math: fp32 | tf32 (TrainerOptions::conv.math; CUDA only; not a model setting)
  bool record_steps = false;    // --record-steps: TrainerOptions::record_steps (CUDA graphs; same results)
  long checkpoint_every = 500;  // 0: only at the end
  double validation = 0;        // fraction of the training pairs held out for a validation PSNR (0: none)
  long validate_every = 100;    // steps between validation scores (and one at the end)
  std::string best;             // file for the weights with the best validation PSNR ("" = none)
  bool resume = false;
  std::string loss_plot;     // PNG of the training PSNR per step ("" = none)
  std::string out;           // the model file (also the checkpoint)
  bool quiet = false;        // no report on stdout
  std::FILE* progress = stderr;  // progress lines (nullptr: none)
};

struct TrainResult {
  Model model;                 // as written to --out
  SubsamplingFactor factor;
  std::vector<float> losses;   // loss of every step of the whole run (resumed runs included)
  // Every validation score of the whole run (resumed runs included): the mean per-patch PSNR (dB)
  // of the held-out pairs without dropout, after each scored step.
  std::vector<ValidationPoint> validation;
  long steps_this_run = 0;
  double seconds = 0;          // training loop wall time of this run
  int pairs = 0;               // training pairs batches are drawn from
  std::vector<int> input_pairs;  // pairs made from each input (before --validation holds some out)
  int validation_pairs = 0;    // pairs held out by --validation (never in a batch)
};

TrainResult run_train(const TrainOptions& opt);

// Training pairs made when --patches is 0: 4096, or fewer for patches above 64x64 (at most
// 256 MiB of pairs).
int default_patches(int patch);

}  // namespace isonet::app
