// restore_with_library.cpp: restores a volume with a trained model through the installed isonet
// library (find_package(isonet), target isonet::app), the way `isonet restore` does with its
// defaults: the model's interpolation, mean fusion, slices in batches of 8 under 4 GiB.
//
//   restore_with_library MODEL.isonet ANISO.tif ISO.tif [auto|cpu|cuda]
//
// The CTest test install_consumer checks that its output equals the installed program's byte for
// byte on the CPU. Errors (a missing file, a corrupt TIFF, ...) are isonet::Error with a message
// naming the problem; nothing is written then.
#include <exception>
#include <iostream>
#include <string>

#include "apps/cmd_restore.h"
#include "imaging/tiff.h"
#include "kernels/device.h"
#include "kernels/error.h"
#include "nn/model_file.h"

int main(int argc, char** argv) {
  if (argc != 4 && argc != 5) {
    std::cerr << "usage: " << argv[0] << " MODEL.isonet ANISO.tif ISO.tif [auto|cpu|cuda]\n";
    return 2;
  }
  try {
    const isonet::Model model = isonet::load_model(argv[1]);
    const isonet::Volume input = isonet::read_tiff(argv[2]);  // ZYX float32 with its voxel size
    isonet::app::RestoreSettings settings;
    settings.device = isonet::select_device(argc == 5 ? argv[4] : "auto");
    settings.interp = isonet::app::model_interp(model);
    const isonet::Volume restored = isonet::app::restore_volume(model, input, settings, std::cout);
    isonet::write_tiff(argv[3], restored);  // ZYX float32, z spacing = lateral pixel size
    std::cout << "restored " << argv[2] << " -> " << argv[3] << " " << restored.shape_str() << "\n";
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "restore_with_library: " << e.what() << "\n";
    return 1;
  }
}
