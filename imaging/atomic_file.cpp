// atomic_file.cpp: implementation of atomic_file.h (POSIX mkstemp + rename).
#include "imaging/atomic_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "kernels/error.h"

namespace isonet {

namespace {
std::string directory_of(const std::string& path) {
  size_t slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}
}  // namespace

AtomicFile::AtomicFile(const std::string& path) : path_(path) {
  ISONET_CHECK(!path.empty(), "write: empty output path");
  std::vector<char> name(path.begin(), path.end());
  const char suffix[] = ".tmp-XXXXXX";
  name.insert(name.end(), suffix, suffix + sizeof suffix);  // includes the terminating NUL
  int fd = mkstemp(name.data());
  if (fd < 0) {
    fail("write ", path, ": cannot create a temporary file in '", directory_of(path), "': ", std::strerror(errno));
  }
  temp_path_ = name.data();
  file_ = fdopen(fd, "wb");
  if (!file_) {
    int e = errno;
    close(fd);
    unlink(temp_path_.c_str());
    fail("write ", path, ": fdopen failed: ", std::strerror(e));
  }
}

AtomicFile::~AtomicFile() {
  if (committed_) return;
  if (file_) std::fclose(file_);
  unlink(temp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t bytes) {
  ISONET_CHECK(file_, "write ", path_, ": file already closed");
  if (bytes == 0) return;
  if (std::fwrite(data, 1, bytes, file_) != bytes) {
    fail("write ", path_, ": writing ", bytes, " bytes failed (", std::strerror(errno), "; disk full?)");
  }
}

void AtomicFile::commit() {
  ISONET_CHECK(file_, "write ", path_, ": file already closed");
  bool ok = std::fflush(file_) == 0;
  int e = errno;
  ok = (std::fclose(file_) == 0) && ok;
  if (!ok) e = errno;
  file_ = nullptr;
  if (!ok) fail("write ", path_, ": flushing/closing the file failed (", std::strerror(e), "; disk full?)");
  // mkstemp creates 0600; give the output the usual rw-r--r-- (reading the umask is not
  // thread-safe, and outputs are meant to be shared).
  if (chmod(temp_path_.c_str(), 0644) != 0) {
    fail("write ", path_, ": chmod of the temporary file failed: ", std::strerror(errno));
  }
  if (std::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    fail("write ", path_, ": renaming the temporary file into place failed: ", std::strerror(errno));
  }
  committed_ = true;
}

}  // namespace isonet
