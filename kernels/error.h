// error.h: the one exception type of the project and the check macro used by every layer.
// Errors carry the operation's name so a user can tell which step failed and why.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace isonet {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Builds a message from any streamable pieces: fail("conv2d: bad kernel size ", k).
template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  throw Error(os.str());
}

}  // namespace isonet

// ISONET_CHECK(cond, pieces...): throws isonet::Error with the pieces when cond is false.
#define ISONET_CHECK(cond, ...)            \
  do {                                     \
    if (!(cond)) ::isonet::fail(__VA_ARGS__); \
  } while (0)
