// model.cpp: creating models and looking up their tensors by name.
#include "nn/model.h"

#include "kernels/error.h"

namespace isonet {

Model Model::empty(Architecture arch) {
  Model m;
  m.architecture = arch;
  m.layout = make_network(arch)->layout();
  m.weights.assign(m.layout.total_floats(), 0.f);
  return m;
}

Model Model::create(Architecture arch, uint64_t seed, float dropout) {
  ISONET_CHECK(dropout >= 0.f && dropout < 1.f, "model: dropout must be in [0, 1), got ", dropout);
  Model m = empty(arch);
  m.dropout = dropout;
  m.weights = init_parameters(m.layout, seed);
  return m;
}

float* Model::tensor(const std::string& name) {
  return const_cast<float*>(static_cast<const Model&>(*this).tensor(name));
}

const float* Model::tensor(const std::string& name) const {
  long i = layout.find(name);
  ISONET_CHECK(i >= 0, "model: ", architecture_name(architecture), " has no tensor '", name, "'");
  return weights.data() + layout.offset(size_t(i));
}

}  // namespace isonet
