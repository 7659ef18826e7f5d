// model.h: a trained (or freshly initialized) network as plain host data: architecture, flat
// weights, optional Adam state for resuming, and the metadata a restoration needs later (how the
// data were normalized, which PSF and subsampling factor the training pairs were made with).
// This is what nn/model_file.h saves and loads; nn/trainer.h copies it onto a device and back.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "nn/network.h"
#include "nn/parameters.h"

namespace isonet {

// Percentile normalization of the input: x' = (x - low_value) / (high_value - low_value), where
// low_value / high_value are the low / high percentiles of the training data.
struct Normalization {
  double low_percentile = 2.0;
  double high_percentile = 99.8;
  double low_value = 0.0;
  double high_value = 1.0;
};

struct ModelMetadata {
  Normalization normalization;
  std::string psf;                // human-readable PSF description ("gaussian sigma_xy=2 sigma_z=8", a file)
  std::string psf_mode = "full";  // "full" (the rotated PSF) or "split" (the paper's h_split)
  double subsampling = 1.0;       // axial subsampling factor the training pairs were made with
  std::string extra_json = "{}";  // anything else, as a JSON object (kept verbatim)
};

// Adam's moments ([layout.total_floats()] each) after `step` updates (Adam's t); empty when not
// kept. t can be below Model::steps when training was resumed without saved moments.
struct AdamState {
  long step = 0;
  std::vector<float> m, v;
  bool empty() const { return m.empty(); }
};

struct Model {
  Architecture architecture = Architecture::IsoNet2;
  float dropout = 0.2f;       // drop probability of the dropout layers during training
  ParamLayout layout;         // = make_network(architecture)->layout()
  std::vector<float> weights; // flat [layout.total_floats()], padding 0
  long steps = 0;             // training steps taken so far (all runs together)
  AdamState adam;             // moments at `steps`, or empty (resuming then restarts Adam)
  ModelMetadata metadata;

  // A new model with seeded Glorot-uniform weights (parameters.h).
  static Model create(Architecture arch, uint64_t seed, float dropout = 0.2f);
  // An all-zero model of `arch` (filled by the model file loader).
  static Model empty(Architecture arch);

  // View of the tensor called `name`: [layout.spec(i).numel()] floats. Throws when unknown.
  float* tensor(const std::string& name);
  const float* tensor(const std::string& name) const;
};

}  // namespace isonet
