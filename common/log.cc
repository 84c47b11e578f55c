#include "common/log.h"

#include <grpc/support/log.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <shared_mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "nlohmann/json.hpp"

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

// Where lines go (SetLogOutput); guarded by LogMutex.
struct Sinks {
  FILE* out = stderr;
  Severity out_min = Severity::kDebug;
  FILE* console = nullptr;  // console lines; null: with the others
  std::vector<FILE*> owned;
};
Sinks& CurrentSinks() {
  static Sinks sinks;
  return sinks;
}

std::string Timestamp() {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%S%Ez", absl::Now(), absl::UTCTimeZone());
}

// logrus's TextFormatter quotes a field value holding anything beyond
// letters, digits and -._/@^+ (hint="script exception", agent=agent-1).
std::string FieldValue(const std::string& v) {
  for (char ch : v) {
    const bool plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                       ch == '-' || ch == '.' || ch == '_' || ch == '/' || ch == '@' || ch == '^' || ch == '+';
    if (!plain) return Quote(v);
  }
  return v;
}

std::string TextLine(const LogOptions& options, Severity severity, absl::string_view message,
                     const std::vector<std::pair<std::string, std::string>>& fields) {
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
      for (const auto& [k, v] : fields) absl::StrAppend(&line, " ", k, "=", FieldValue(v));
    }
  } else {
    static constexpr const char* kLevels[] = {"debug", "info", "warning", "error"};
    line = absl::StrCat("time=\"", Timestamp(), "\" level=", kLevels[static_cast<int>(severity)], " msg=", FieldValue(std::string(message)));
    for (const auto& [k, v] : fields) absl::StrAppend(&line, " ", k, "=", FieldValue(v));
  }
  return line;
}

// logrus's JSONFormatter: the fields, level, msg and time, keys sorted,
// time in RFC 3339 ("Z" for UTC).
std::string JsonLine(Severity severity, absl::string_view message,
                     const std::vector<std::pair<std::string, std::string>>& fields) {
  static constexpr const char* kLevels[] = {"debug", "info", "warning", "error"};
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [k, v] : fields) j[k] = v;
  j["level"] = kLevels[static_cast<int>(severity)];
  j["msg"] = std::string(message);
  std::string time = Timestamp();
  if (absl::EndsWith(time, "+00:00")) time = time.substr(0, time.size() - 6) + "Z";
  j["time"] = time;
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
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

absl::StatusOr<LogOutput> ParseLogOutput(const std::string& spec) {
  LogOutput out;
  if (spec == "stderr" || spec.empty()) return out;
  if (spec == "stdout") {
    out.kind = LogOutput::Kind::kStdout;
    return out;
  }
  if (spec == "none") {
    out.kind = LogOutput::Kind::kNone;
    return out;
  }
  if (absl::StartsWith(spec, "loki")) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported log output '", spec, "': Barrage has no Loki client"));
  }
  if (spec != "file" && !absl::StartsWith(spec, "file=")) {
    return absl::InvalidArgumentError(absl::StrCat("unsupported log output '", spec, "'"));
  }
  // k6's FileHookFromConfigLine: "file=PATH,level=LEVEL".
  out.kind = LogOutput::Kind::kFile;
  for (absl::string_view token : absl::StrSplit(spec, ',')) {
    std::pair<std::string, std::string> kv = absl::StrSplit(token, absl::MaxSplits('=', 1));
    if (kv.first == "file") {
      if (kv.second.empty()) return absl::InvalidArgumentError("filepath must not be empty");
      out.path = kv.second;
    } else if (kv.first == "level") {
      const std::string& l = kv.second;
      if (l == "debug" || l == "trace") out.file_level = Severity::kDebug;
      else if (l == "info") out.file_level = Severity::kInfo;
      else if (l == "warn" || l == "warning") out.file_level = Severity::kWarning;
      else if (l == "error" || l == "fatal" || l == "panic") out.file_level = Severity::kError;
      else return absl::InvalidArgumentError(absl::StrCat("unknown log level ", l));
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown logfile config key ", kv.first));
    }
  }
  if (out.path.empty()) return absl::InvalidArgumentError("filepath must not be empty");
  return out;
}

absl::Status SetLogOutput(const LogOutput& output, const std::string& console_path) {
  Sinks sinks;
  auto open = [&](const std::string& path, const char* what) -> absl::StatusOr<FILE*> {
    FILE* f = fopen(path.c_str(), "a");
    if (f == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": failed to open ", path, ": ", strerror(errno)));
    }
    sinks.owned.push_back(f);
    return f;
  };
  switch (output.kind) {
    case LogOutput::Kind::kStderr:
      sinks.out = stderr;
      break;
    case LogOutput::Kind::kStdout:
      sinks.out = stdout;
      break;
    case LogOutput::Kind::kNone:
      sinks.out = nullptr;
      break;
    case LogOutput::Kind::kFile: {
      absl::StatusOr<FILE*> f = open(output.path, "--log-output");
      if (!f.ok()) {
        for (FILE* o : sinks.owned) fclose(o);
        return f.status();
      }
      sinks.out = *f;
      sinks.out_min = output.file_level;
      break;
    }
  }
  if (!console_path.empty()) {
    absl::StatusOr<FILE*> f = open(console_path, "--console-output");
    if (!f.ok()) {
      for (FILE* o : sinks.owned) fclose(o);
      return f.status();
    }
    sinks.console = *f;
  }
  std::lock_guard<std::mutex> lock(LogMutex());
  // The files of a previous call stay open: a line being written elsewhere
  // may hold one. Set once per process in practice.
  Sinks& current = CurrentSinks();
  std::vector<FILE*> owned = std::move(current.owned);
  current = std::move(sinks);
  current.owned.insert(current.owned.end(), owned.begin(), owned.end());
  return absl::OkStatus();
}

void Log(Severity severity, absl::string_view message,
         const std::vector<std::pair<std::string, std::string>>& fields) {
  LogOptions options;
  {
    std::lock_guard<std::mutex> lock(LogMutex());
    options = Options();
  }
  if (severity == Severity::kDebug && !options.verbose) return;
  {
    std::lock_guard<std::mutex> lock(LogMutex());
    const Sinks& sinks = CurrentSinks();
    // A console line goes to --console-output, without its source field
    // (k6 writes it through a logger of its own).
    bool console = false;
    std::vector<std::pair<std::string, std::string>> kept;
    if (sinks.console != nullptr) {
      for (const auto& field : fields) {
        if (field.first == "source" && field.second == "console") console = true;
        else kept.push_back(field);
      }
    }
    FILE* to = console ? sinks.console : sinks.out;
    if (to != nullptr && (console || severity >= sinks.out_min)) {
      const auto& f = console ? kept : fields;
      LogOptions layout = options;
      if (console) layout.tty = false;  // a file
      std::string line = options.format == LogFormat::kJson  ? JsonLine(severity, message, f)
                         : options.format == LogFormat::kRaw ? std::string(message)
                                                             : TextLine(layout, severity, message, f);
      line.push_back('\n');
      fwrite(line.data(), 1, line.size(), to);
      fflush(to);
    }
  }
  std::shared_lock<std::shared_mutex> forwarding(ForwarderMutex());
  if (Forwarder()) Forwarder()(severity, message, fields);
}

// gRPC still decides what reaches the function (ERROR, or GRPC_VERBOSITY).
void RouteGrpcLogs() {
  gpr_set_log_function([](gpr_log_func_args* args) {
    Log(Severity::kDebug, args->message, {{"source", "grpc"}});
  });
}

}  // namespace barrage
