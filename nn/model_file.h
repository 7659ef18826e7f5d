// model_file.h: saving and loading Models as safetensors files (nn/safetensors.h).
//
// Tensors: every parameter under its layout name, shape as in the layout, e.g. "enc1.weight"
// [16,1,7,7], "enc1.bias" [16] (the same names as the state_dict of scripts/torch_reference.py's
// PyTorch modules, so Python can load our files into them directly). With the optimizer state,
// also "optimizer.m.<name>" and "optimizer.v.<name>" of the same shapes.
// __metadata__ (all values strings, as the format requires):
//   format "isonet-cuda model", format_version "1", architecture "isonet1"|"isonet2",
//   dropout, training_steps, adam_step (only with optimizer tensors),
//   normalization_low_percentile, normalization_high_percentile, normalization_low_value,
//   normalization_high_value, psf, psf_mode ("full"|"split"), subsampling,
//   extra (a JSON object as text, for anything else).
// Numbers are written with 17 significant digits (doubles) or 9 (floats), so they round-trip.
#pragma once
#include <string>

#include "nn/model.h"

namespace isonet {

constexpr int kModelFormatVersion = 1;
constexpr const char* kModelFormatName = "isonet-cuda model";

// Writes atomically (temporary file + rename). with_optimizer adds Adam's moments (when the model
// has them) so that training can resume exactly.
void save_model(const std::string& path, const Model& model, bool with_optimizer = true);

// Reads and validates a model file: everything safetensors.h checks, then the format name and
// version, a known architecture, every tensor of that architecture present with its exact shape,
// no unknown tensors, finite weights, well-formed metadata. Errors name the file and the problem.
Model load_model(const std::string& path);

}  // namespace isonet
