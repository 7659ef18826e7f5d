// common.h: small helpers shared by the `isonet` commands: reading input volumes with the checks
// every command needs (file present, 3D, finite), number formatting that shows a value exactly as
// used, comma-separated number lists, the hint added to out-of-memory errors, and the note that
// --math tf32 does nothing on the CPU.
#pragma once
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "imaging/tiff.h"
#include "imaging/volume.h"
#include "kernels/conv2d.h"
#include "kernels/device.h"

namespace isonet::app {

// ", channel C of N, time point T of M" for a volume read from a hyperstack, "" otherwise.
std::string describe_selection(const TiffInfo& info, const TiffSelection& select);

// For a hyperstack whose every channel and time point is a single plane (a header read without a
// selection): "each channel and time point is a single plane: if the planes are z slices, ..." with
// how to fix the file; "" otherwise. Such files are usually 3D stacks their writer labelled wrongly (tifffile's
// imwrite(..., imagej=True) calls the planes of a 3D array channels unless given the axes).
std::string mislabelled_stack_hint(const TiffInfo& header);

// Reads a TIFF volume for a command: a clear error when the file is missing, when it is not 3D
// (fewer than `min_planes` planes; 2 by default), or when it holds NaN or Inf. `what` names the
// role ("input", "ground truth") in the messages. `select` picks the channel and time point of a
// hyperstack (--channel, --frame); a hyperstack with several and no choice is refused, naming them
// and the option to use, or, where the command offers no choice for this file (`selectable`
// false), the commands that do.
Volume read_volume(const std::string& path, const char* what, TiffInfo* info = nullptr, int min_planes = 2,
                   const TiffSelection& select = {}, bool selectable = true);

// Throws a clear isonet::Error unless `path` names an existing regular file.
void require_file(const std::string& path, const char* what);

// Shortest decimal text with at least `min_decimals` decimals that reads back as `v` to within
// 1e-12 relative (at most 12 decimals): 0.4 -> "0.4000", 0.0345 -> "0.0345", 4 -> "4.0000".
std::string format_exact(double v, int min_decimals = 4);

// `v` with exactly `decimals` decimals (scores: 30.27).
std::string format_fixed(double v, int decimals);

// "a,b,c" -> numbers; throws naming `what` and showing `expected_form` on a malformed list or a
// count other than `count` (count < 0: any count >= 1).
std::vector<double> parse_number_list(const std::string& text, int count, const char* what,
                                      const char* expected_form);

// What to do when memory runs out, said per kind of memory: the GPU's (a CUDA allocation error)
// or the host's (std::bad_alloc, or an allocation error of a CPU buffer).
struct OomHints {
  std::string gpu, host;
};

// Runs `body`; running out of memory is rethrown as an isonet::Error with the matching hint
// appended, so the user learns which option (e.g. --max-memory, --batch) to lower.
void with_oom_hint(const std::function<void()>& body, const OomHints& hints);

// --math tf32 on the CPU, which ignores it: writes the one line "CMD: --math tf32 applies to CUDA
// only; the CPU computes the convolutions in fp32" to `log`. Nothing for fp32 or on CUDA.
void note_cpu_conv_math(std::ostream& log, const char* cmd, Conv2dMath math, Device device);

// Writes the output files of one command all or nothing: each `write(path)` first writes to a
// temporary file beside its target; only when every write succeeded are the temporaries renamed
// onto the targets. When a write fails (disk full, no permission) the temporaries are removed, no
// target is created or changed, and the error is rethrown. (Only a failing rename after that, on
// the same directory, could leave the set partly replaced.)
struct OutputFile {
  std::string path;
  std::function<void(const std::string& path)> write;
};
void write_all_or_nothing(const std::vector<OutputFile>& outputs);

// "(Z,Y,X) voxel z x y x x unit" for logs.
std::string describe_voxel(const VoxelSize& v);

// std::cout, or a stream that discards everything when `quiet` (commands called from tests).
std::ostream& report_stream(bool quiet);

// True when a and b agree within `rel` relative tolerance.
bool nearly_equal(double a, double b, double rel = 1e-3);

}  // namespace isonet::app
