// atomic_file.h: write-to-temp-then-rename for every file the imaging code writes, so that a
// failure (disk full, exception half way) never leaves a partial output under the final name.
#pragma once
#include <cstdio>
#include <string>

namespace isonet {

class AtomicFile {
 public:
  // Creates "<path>.tmp-XXXXXX" in the target's directory (error names the directory).
  explicit AtomicFile(const std::string& path);
  // Removes the temp file unless commit() succeeded.
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;

  FILE* file() { return file_; }
  const std::string& path() const { return path_; }
  // fwrite that throws isonet::Error (naming the file) on a short write.
  void write(const void* data, size_t bytes);
  // Flushes, closes (checking both), gives the file ordinary permissions and renames it over
  // the target path.
  void commit();

 private:
  std::string path_, temp_path_;
  FILE* file_ = nullptr;
  bool committed_ = false;
};

}  // namespace isonet
