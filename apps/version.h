// version.h: what `isonet --version` prints: the version, how this binary was built (CUDA backend
// and its architectures) and the CUDA devices it can use here, or why none (for bug reports).
#pragma once
#include <string>

namespace isonet::app {

// Three lines: "isonet X.Y.Z", "build: ...", "CUDA devices: ..." (one line per device after it).
std::string version_text();

}  // namespace isonet::app
