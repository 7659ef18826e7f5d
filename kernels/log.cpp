// log.cpp: implementation of log.h (stderr, one line per message, thread-safe enough for our use).
#include "kernels/log.h"

#include <atomic>
#include <cstdio>

namespace isonet {

static std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
void log_info(const std::string& m) {
  if (g_level >= static_cast<int>(LogLevel::Info)) std::fprintf(stderr, "[isonet] %s\n", m.c_str());
}
void log_debug(const std::string& m) {
  if (g_level >= static_cast<int>(LogLevel::Debug)) std::fprintf(stderr, "[isonet:debug] %s\n", m.c_str());
}

}  // namespace isonet
