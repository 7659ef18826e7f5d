// log.h: minimal leveled logging to stderr. Library code logs rarely (device choice, fallbacks).
#pragma once
#include <string>

namespace isonet {

enum class LogLevel { Quiet = 0, Info = 1, Debug = 2 };
void set_log_level(LogLevel level);
LogLevel log_level();
void log_info(const std::string& message);
void log_debug(const std::string& message);

}  // namespace isonet
