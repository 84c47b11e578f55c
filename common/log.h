// The run's log, in k6's two layouts on stderr: on a terminal
// `INFO[0003] message  source=console`, otherwise logfmt
// `time="2026-11-24T07:00:00Z" level=info msg="message" source=console`.
// Thread-safe: lines from many workers never interleave.
#ifndef BARRAGE_COMMON_LOG_H_
#define BARRAGE_COMMON_LOG_H_

#include <functional>
#include <string>
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

namespace barrage {

enum class Severity { kDebug, kInfo, kWarning, kError };

struct LogOptions {
  bool verbose = false;  // debug lines shown
  bool tty = false;      // terminal layout
  bool color = false;
};
void ConfigureLog(const LogOptions& options);

// fields are appended as key=value, e.g. {"source", "console"}.
void Log(Severity severity, absl::string_view message,
         const std::vector<std::pair<std::string, std::string>>& fields = {});

// An agent process forwards its log lines to the controller: the forwarder
// gets every line that is written (after it is written locally). nullptr
// stops forwarding. The forwarder must not log.
using LogForwarder = std::function<void(Severity severity, absl::string_view message,
                                        const std::vector<std::pair<std::string, std::string>>& fields)>;
void SetLogForwarder(LogForwarder forwarder);

}  // namespace barrage

#endif  // BARRAGE_COMMON_LOG_H_
