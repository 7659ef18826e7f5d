// common.cpp: shared helpers of the `isonet` commands (see common.h).
#include "apps/common.h"

#include <sys/stat.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>

#include "kernels/error.h"

namespace isonet::app {

void require_file(const std::string& path, const char* what) {
  ISONET_CHECK(!path.empty(), what, ": no file given");
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) fail(what, " file '", path, "' cannot be opened: ", std::strerror(errno));
  ISONET_CHECK(S_ISREG(st.st_mode), what, " '", path, "' is not a regular file");
}

std::string mislabelled_stack_hint(const TiffInfo& header) {
  if (header.nz != 1 || header.channels * header.frames <= 1) return "";
  return "each channel and time point is a single plane: if the planes are z slices, the file's metadata "
         "mislabels them; save it with axes ZYX, e.g. tifffile.imwrite(path, data, imagej=True, "
         "metadata={'axes': 'ZYX'}), or set Slices in Fiji's Image > Properties";
}

Volume read_volume(const std::string& path, const char* what, TiffInfo* info, int min_planes,
                   const TiffSelection& select, bool selectable) {
  require_file(path, what);
  TiffInfo local;
  Volume v;
  try {
    v = read_tiff(path, &local, select);
  } catch (const Error&) {
    // A hyperstack without a choice is refused by the reader; say it in the command line's words.
    const TiffInfo header = read_tiff_info(path, select);
    const std::string hint = mislabelled_stack_hint(header);
    const std::string mislabelled = hint.empty() ? hint : " (" + hint + ")";
    auto require_choice = [&](int count, int chosen, const char* noun, const char* option) {
      if (count <= 1 || chosen >= 0) return;
      if (!selectable)
        fail(what, " '", path, "' holds ", count, " ", noun, mislabelled, ": this option takes a single volume (train, ",
             "restore, deconv and preview --input choose one with --channel/--frame; or save one channel per file)");
      fail(what, " '", path, "' holds ", count, " ", noun, mislabelled, ": choose one with ", option, " 0..", count - 1);
    };
    require_choice(header.channels, select.channel, "channels", "--channel");
    require_choice(header.frames, select.frame, "time points", "--frame");
    throw;
  }
  if (info) *info = local;
  ISONET_CHECK(v.nz >= min_planes, what, " '", path, "' has shape ", v.shape_str(), ": a 3D volume (Z,Y,X) with at least ",
               min_planes, " planes is needed (a 2D image or a single plane cannot be used here)");
  const std::string label = std::string(what) + " '" + path + "'";
  require_finite(v, label.c_str());
  return v;
}

std::string describe_selection(const TiffInfo& info, const TiffSelection& select) {
  std::string s;
  if (info.channels > 1)
    s += ", channel " + std::to_string(select.channel) + " of " + std::to_string(info.channels);
  if (info.frames > 1)
    s += ", time point " + std::to_string(select.frame) + " of " + std::to_string(info.frames);
  return s;
}

std::string format_fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string format_exact(double v, int min_decimals) {
  char buf[64];
  for (int d = min_decimals; d <= 12; ++d) {
    std::snprintf(buf, sizeof buf, "%.*f", d, v);
    const double back = std::strtod(buf, nullptr);
    if (std::fabs(back - v) <= 1e-12 * std::max(1.0, std::fabs(v))) return buf;
  }
  return buf;
}

std::vector<double> parse_number_list(const std::string& text, int count, const char* what,
                                      const char* expected_form) {
  std::vector<double> values;
  std::stringstream ss(text);
  std::string item;
  auto bad = [&](const std::string& why) {
    fail(what, ": cannot read '", text, "' (", why, "); expected ", expected_form);
  };
  if (text.empty()) bad("empty");
  while (std::getline(ss, item, ',')) {
    const char* s = item.c_str();
    char* end = nullptr;
    errno = 0;
    const double x = std::strtod(s, &end);
    while (end && *end == ' ') ++end;
    if (item.empty() || end == s || *end != '\0' || errno == ERANGE || !std::isfinite(x))
      bad("'" + item + "' is not a number");
    values.push_back(x);
  }
  if (!text.empty() && text.back() == ',') bad("trailing comma");
  if (count >= 0 && int(values.size()) != count)
    bad(std::to_string(values.size()) + " values, " + std::to_string(count) + " needed");
  return values;
}

void with_oom_hint(const std::function<void()>& body, const OomHints& hints) {
  try {
    body();
  } catch (const Error& e) {
    const std::string msg = e.what();
    if (msg.find("cudaErrorMemoryAllocation") != std::string::npos || msg.find("out of GPU memory") != std::string::npos)
      throw Error(msg + "\n  hint: " + hints.gpu);
    if (msg.find("out of memory") != std::string::npos) throw Error(msg + "\n  hint: " + hints.host);
    throw;
  } catch (const std::bad_alloc&) {
    throw Error("out of host memory\n  hint: " + hints.host);
  }
}

void note_cpu_conv_math(std::ostream& log, const char* cmd, Conv2dMath math, Device device) {
  if (math == Conv2dMath::Tf32 && device == Device::CPU)
    log << cmd << ": --math tf32 applies to CUDA only; the CPU computes the convolutions in fp32\n";
}

void write_all_or_nothing(const std::vector<OutputFile>& outputs) {
  std::vector<std::string> temporaries;
  auto remove_temporaries = [&] {
    for (const std::string& t : temporaries) std::remove(t.c_str());
  };
  try {
    for (const OutputFile& o : outputs) {
      temporaries.push_back(o.path + ".isonet-partial");
      o.write(temporaries.back());
    }
  } catch (const Error& e) {
    remove_temporaries();
    fail(e.what(), " (so none of the ", outputs.size(), " output files was written)");
  } catch (...) {
    remove_temporaries();
    throw;
  }
  for (size_t i = 0; i < outputs.size(); ++i) {
    if (std::rename(temporaries[i].c_str(), outputs[i].path.c_str()) != 0) {
      const std::string reason = std::strerror(errno);
      remove_temporaries();
      fail("writing '", outputs[i].path, "': renaming its temporary file failed (", reason, ")");
    }
  }
}

std::string describe_voxel(const VoxelSize& v) {
  std::ostringstream os;
  os << "z " << v.z << " x y " << v.y << " x x " << v.x << " " << v.unit;
  return os.str();
}

std::ostream& report_stream(bool quiet) {
  static std::ostream null_stream(nullptr);  // no buffer: every write is discarded
  return quiet ? null_stream : std::cout;
}

bool nearly_equal(double a, double b, double rel) {
  return std::fabs(a - b) <= rel * std::max(std::fabs(a), std::fabs(b));
}

}  // namespace isonet::app
