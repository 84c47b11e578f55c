// The run's log, in k6's layouts (--log-format): text, on a terminal
// `INFO[0003] message  source=console`, otherwise logfmt
// `time="2026-11-24T07:00:00Z" level=info msg="message" source=console`;
// json, logrus's JSON lines `{"level":"info","msg":"message","source":"console","time":"..."}`;
// raw, the message alone. Lines go to stderr unless --log-output says
// stdout, none or a file; console lines to --console-output when given.
// Thread-safe: lines from many workers never interleave.
#ifndef BARRAGE_COMMON_LOG_H_
#define BARRAGE_COMMON_LOG_H_

#include <functional>
#include <string>
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include <utility>
#include <vector>

namespace barrage {

enum class Severity { kDebug, kInfo, kWarning, kError };

enum class LogFormat { kText, kJson, kRaw };

struct LogOptions {
  bool verbose = false;  // debug lines shown
  bool tty = false;      // terminal layout (text format only)
  bool color = false;
  LogFormat format = LogFormat::kText;
};
void ConfigureLog(const LogOptions& options);

// Where the lines go: k6's --log-output values stderr (the default),
// stdout, none, and file=PATH[,level=LEVEL] (appended to; LEVEL, one of
// logrus's names, is the least severe level written).
struct LogOutput {
  enum class Kind { kStderr, kStdout, kNone, kFile };
  Kind kind = Kind::kStderr;
  std::string path;
  Severity file_level = Severity::kDebug;
};
// kInvalidArgument with k6's wording for anything else (loki is not
// supported).
absl::StatusOr<LogOutput> ParseLogOutput(const std::string& spec);

// Sends lines to `output` and, when console_path is not empty, the lines of
// console.log() & co. (source=console) to that file instead, appended to,
// without their source field (k6's --console-output). Files are opened
// here: kInvalidArgument naming the path when one cannot be.
absl::Status SetLogOutput(const LogOutput& output, const std::string& console_path);

// fields are appended as key=value, e.g. {"source", "console"}.
void Log(Severity severity, absl::string_view message,
         const std::vector<std::pair<std::string, std::string>>& fields = {});

// An agent process forwards its log lines to the controller: the forwarder
// gets every line that is written (after it is written locally). nullptr
// stops forwarding. The forwarder must not log.
using LogForwarder = std::function<void(Severity severity, absl::string_view message,
                                        const std::vector<std::pair<std::string, std::string>>& fields)>;
void SetLogForwarder(LogForwarder forwarder);

// gRPC's own lines (gpr_log, e.g. "Handshake failed with fatal error
// SSL_ERROR_SSL") go through Log at debug level (shown with -v): the error
// a user needs reaches them as the call's or connect's error text, and raw
// library lines on stderr break the log format (--log-format json).
void RouteGrpcLogs();

}  // namespace barrage

#endif  // BARRAGE_COMMON_LOG_H_
