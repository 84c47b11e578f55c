#include "common/log.h"

#include <cstdio>
#include <mutex>
#include <shared_mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace barrage {
namespace {

std::mutex& LogMutex() {
  static std::mutex mu;
  return mu;
}
LogOptions& Options() {
  static LogOptions options;
  return options;
}
const absl::Time& StartTime() {
  static const absl::Time start = absl::Now();
  return start;
}

std::string Quote(absl::string_view s) {
  return absl::StrCat("\"", absl::StrReplaceAll(s, {{"\\", "\\\\"}, {"\"", "\\\""}, {"\n", "\\n"}, {"\t", "\\t"}}), "\"");
}

LogForwarder& Forwarder() {
  static LogForwarder forwarder;
  return forwarder;
}
// Held shared while a forwarder runs, exclusively to change it: once
// SetLogForwarder(nullptr) returns, no call of the old one is in progress.
std::shared_mutex& ForwarderMutex() {
  static std::shared_mutex mu;
  return mu;
}

}  // namespace

void SetLogForwarder(LogForwarder forwarder) {
  std::unique_lock<std::shared_mutex> lock(ForwarderMutex());
  Forwarder() = std::move(forwarder);
}

void ConfigureLog(const LogOptions& options) {
  std::lock_guard<std::mutex> lock(LogMutex());
  Options() = options;
  (void)StartTime();
}

void Log(Severity severity, absl::string_view message,
         const std::vector<std::pair<std::string, std::string>>& fields) {
  LogOptions options;
  {
    std::lock_guard<std::mutex> lock(LogMutex());
    options = Options();
  }
  if (severity == Severity::kDebug && !options.verbose) return;
  std::string line;
  if (options.tty) {
    static constexpr const char* kTags[] = {"DEBU", "INFO", "WARN", "ERRO"};
    static constexpr const char* kColors[] = {"\x1b[37m", "\x1b[36m", "\x1b[33m", "\x1b[31m"};
    int64_t secs = absl::ToInt64Seconds(absl::Now() - StartTime());
    const int i = static_cast<int>(severity);
    line = options.color ? absl::StrCat(kColors[i], kTags[i], "\x1b[0m") : kTags[i];
    absl::StrAppend(&line, "[", absl::StrFormat("%04d", secs), "] ", message);
    if (!fields.empty()) {
      // k6 pads the message so fields line up.
      if (message.size() < 44) line.append(44 - message.size(), ' ');
      for (const auto& [k, v] : fields) absl::StrAppend(&line, " ", k, "=", v);
    }
  } else {
    static constexpr const char* kLevels[] = {"debug", "info", "warning", "error"};
    line = absl::StrCat("time=\"", absl::FormatTime("%Y-%m-%dT%H:%M:%S%Ez", absl::Now(), absl::UTCTimeZone()),
                        "\" level=", kLevels[static_cast<int>(severity)], " msg=", Quote(message));
    for (const auto& [k, v] : fields) absl::StrAppend(&line, " ", k, "=", v);
  }
  line.push_back('\n');
  {
    std::lock_guard<std::mutex> lock(LogMutex());
    fwrite(line.data(), 1, line.size(), stderr);
    fflush(stderr);
  }
  std::shared_lock<std::shared_mutex> forwarding(ForwarderMutex());
  if (Forwarder()) Forwarder()(severity, message, fields);
}

}  // namespace barrage
