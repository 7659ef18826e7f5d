// cmd_restore.h: `isonet restore`: applies a trained model to an anisotropic volume.
//
//  1. Normalization: the percentiles the model was trained with (stored in the model, e.g. 2 and
//     99.8) are recomputed on THIS input and applied, as CSBDeep's IsotropicCARE.predict does
//     (normalizer PercentileNormalizer on the input), and undone at the end. The training data's
//     percentile values are stored in the model too but are not reused: a volume acquired with
//     another gain or offset is then mapped onto the same normalized range.
//  2. Upsampling along z by the model's factor S to ceil(Z*S) planes, acquired plane k at plane
//     k*S (DESIGN.md section 5), cubic (Keys, the paper's bicubic) or linear; default: the
//     interpolation the model was trained with.
//  3. The network on every XZ slice [Z', X] (at fixed y) and every YZ slice [Z', Y] (at fixed x),
//     z along rows as in the training pairs (imaging/training_pairs.h), each padded to multiples
//     of 4 by reflection (numpy 'reflect') and cropped back.
//  4. Fusion of the two predictions (--fusion): "mean" (default), the arithmetic mean, or
//     "geometric", CSBDeep's sqrt(max(xz, 0) * max(yz, 0)). We default to the arithmetic mean: it
//     is linear (so it commutes with undoing the normalization and keeps the intensity scale of
//     both predictions), unbiased where the two agree up to noise, and keeps real negative
//     background after the percentile shift, whereas the geometric mean clamps to 0 and pulls
//     every voxel towards the smaller prediction. (The geometric mean suppresses structures one
//     orientation alone hallucinates; choose it with --fusion geometric.)
//  5. Undo of the normalization; output voxel size (dx, dy, dx): z spacing = lateral pixel size.
//
// Bounded memory: the working memory (the network's activations, op workspace, weights and batch
// buffers on the chosen device, and the host buffers of the slices and tiles of one call) is
// computed exactly for every call from the network's own layout and the device's workspace
// queries (restore_memory.h) and kept under --max-memory: slices are processed in batches of up
// to --batch that fit, and slices too large for the budget are cut into strips or tiles with a
// 48-pixel margin (more than IsoNet-2's ~38-pixel receptive radius), tile origins on multiples of
// 4 so that the pooling grid is the same as untiled: the tiled result equals the untiled one up to
// float rounding. The host holds the upsampled volume and the result (2 x 4 bytes per output voxel).
#pragma once
#include <cstddef>
#include <cstdio>
#include <iosfwd>
#include <string>
#include <vector>

#include "imaging/resample.h"
#include "imaging/tiff.h"
#include "imaging/volume.h"
#include "kernels/conv2d.h"
#include "kernels/device.h"
#include "nn/model.h"
#include "nn/network.h"

namespace isonet::app {

enum class Fusion { Mean, Geometric };
Fusion parse_fusion(const std::string& name);  // "mean" | "geometric"

struct RestoreSettings {
  Device device = Device::CPU;
  Interp interp = Interp::Cubic;
  Fusion fusion = Fusion::Mean;
  int batch = 8;                  // slices per network call (at most)
  size_t max_memory_bytes = size_t(4096) << 20;
  int tile_margin = 48;           // context around a tile (multiple of 4)
  ConvSettings conv;              // how the network's convs run (TrainerOptions::conv)
  std::FILE* progress = nullptr;  // progress lines (slices done, slices/s, ETA); nullptr: none
};

struct RestoreStats {
  double factor = 0;
  size_t memory_bytes = 0;                       // device + staging bytes held at the end (restore_memory.h)
  int batch_used = 0;                            // slices per call (1 when tiling)
  int tile_h = 0, tile_w = 0;                    // tile core size when tiling (0: whole slices)
  double seconds = 0;
};

// Restores `input` (finite, 3D) with `model`; progress notes to `log`.
Volume restore_volume(const Model& model, const Volume& input, const RestoreSettings& settings, std::ostream& log,
                      RestoreStats* stats = nullptr);

struct RestoreOptions {
  std::string model, input, output;
  TiffSelection select;           // --channel / --frame of a hyperstack input
  std::string device = "auto";
  double max_memory_mb = 4096;
  std::string interp;             // "" = the model's training interpolation
  std::string fusion = "mean";
  int batch = 8;
  std::string conv = "auto";      // --conv: auto | direct | fft (TrainerOptions::conv.algo)
  std::string math = "fp32";      // --math: fp32 | tf32 (TrainerOptions::conv.math; CUDA only)
  std::string preview;            // PNG of input and result ("" = none)
  bool quiet = false;
  std::FILE* progress = stderr;   // progress lines (nullptr: none)
};

Volume run_restore(const RestoreOptions& opt);

// `isonet restore` with one or several inputs: one input with `opt.output` is run_restore; with
// `output_dir` every input is restored to OUTPUT_DIR/<its name without .tif/.tiff/.ome.tif>_iso.tif
// (the model read once per input; each file written atomically, so a failure leaves the earlier
// results and nothing half-written). Refused before any work: several inputs with --output or
// --preview, both or neither of --output/--output-dir, two inputs with the same output name.
// Returns the output paths.
std::vector<std::string> run_restore_inputs(RestoreOptions opt, const std::vector<std::string>& inputs,
                                            const std::string& output_dir);

// The interpolation a model was trained with ("cubic" when the model does not say).
Interp model_interp(const Model& model);

}  // namespace isonet::app
