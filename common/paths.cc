#include "common/paths.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace barrage {
namespace {

constexpr std::string_view kHttps = "https://";
constexpr std::string_view kFile = "file://";

absl::string_view Sv(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool HostChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
         c == '-' || c == '_' || c == ':' || c == '[' || c == ']';
}

// Splits "https://host/path?query" into its host, path and query ("?..."
// included). false if it has no host.
bool SplitRemote(std::string_view url, std::string_view* host, std::string_view* path,
                 std::string_view* query) {
  if (url.substr(0, kHttps.size()) != kHttps) return false;
  std::string_view rest = url.substr(kHttps.size());
  const size_t q = rest.find('?');
  *query = q == std::string_view::npos ? std::string_view() : rest.substr(q);
  rest = rest.substr(0, q);
  const size_t slash = rest.find('/');
  *host = rest.substr(0, slash);
  *path = slash == std::string_view::npos ? std::string_view("/") : rest.substr(slash);
  return !host->empty();
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Go's url.PathUnescape.
absl::StatusOr<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    const int hi = i + 2 < s.size() ? HexValue(s[i + 1]) : -1;
    const int lo = i + 2 < s.size() ? HexValue(s[i + 2]) : -1;
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid URL escape \"", Sv(s.substr(i, 3)), "\""));
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

absl::Status CheckNoNul(std::string_view s) {
  if (s.find('\0') != std::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("path \"", absl::CHexEscape(Sv(s)), "\" holds a NUL character"));
  }
  return absl::OkStatus();
}

// A remote key from its parts, or an error naming spec.
absl::StatusOr<std::string> RemoteKey(std::string_view host, std::string_view path, std::string_view query,
                                      std::string_view spec) {
  std::string key = absl::StrCat(Sv(kHttps), Sv(host), CleanPath(path.empty() ? "/" : path), Sv(query));
  if (!IsRemoteKey(key)) {
    return absl::InvalidArgumentError(
        absl::StrCat("The moduleSpecifier \"", Sv(spec), "\" couldn't be recognised as something k6 supports."));
  }
  return key;
}

}  // namespace

std::string CleanPath(std::string_view path) {
  if (path.empty()) return ".";
  const bool rooted = path[0] == '/';
  std::vector<std::string_view> parts;
  size_t leading_dotdots = 0;  // kept at the front of a relative path
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    const std::string_view part = path.substr(start, slash - start);
    start = slash + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") {
      if (parts.size() > leading_dotdots) {
        parts.pop_back();
      } else if (!rooted) {
        parts.push_back(part);
        ++leading_dotdots;
      }
      continue;
    }
    parts.push_back(part);
  }
  std::string out = rooted ? "/" : "";
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out.push_back('/');
    out.append(parts[i].data(), parts[i].size());
  }
  return out.empty() ? "." : out;
}

std::string AbsPath(std::string_view root, std::string_view path) {
  if (!path.empty() && path[0] == '/') return CleanPath(path);
  std::string joined = absl::StrCat(Sv(root), "/", Sv(path));
  std::string clean = CleanPath(joined);
  if (clean[0] != '/') clean.insert(0, "/");
  return clean;
}

std::string JoinPath(std::string_view dir, std::string_view name) {
  if (dir.empty()) return name.empty() ? "" : CleanPath(name);
  if (name.empty()) return CleanPath(dir);
  return CleanPath(absl::StrCat(Sv(dir), "/", Sv(name)));
}

std::string DirOf(std::string_view key) {
  std::string_view host, path, query;
  if (SplitRemote(key, &host, &path, &query)) {
    const size_t slash = path.rfind('/');
    return absl::StrCat(Sv(kHttps), Sv(host), slash == 0 ? "/" : Sv(path.substr(0, slash)));
  }
  const size_t slash = key.rfind('/');
  if (slash == std::string_view::npos) return ".";
  if (slash == 0) return "/";
  return std::string(key.substr(0, slash));
}

bool IsCleanAbsolutePath(std::string_view path) {
  if (path.empty() || path[0] != '/' || path.find('\0') != std::string_view::npos) return false;
  if (path == "/") return true;
  return CleanPath(path) == path;
}

bool IsRemoteKey(std::string_view key) {
  std::string_view host, path, query;
  if (!SplitRemote(key, &host, &path, &query)) return false;
  // "." and ".." are no host, and would climb out of a cache folder.
  if (host[0] == '.') return false;
  for (char c : host) {
    if (!HostChar(c)) return false;
  }
  if (!IsCleanAbsolutePath(path)) return false;
  return query.find('\0') == std::string_view::npos && query.find('#') == std::string_view::npos &&
         path.find('#') == std::string_view::npos;
}

absl::StatusOr<std::string> ResolveModuleSpecifier(std::string_view base_dir, std::string_view spec) {
  if (spec.empty()) return absl::InvalidArgumentError("local or remote path required");
  if (absl::Status st = CheckNoNul(spec); !st.ok()) return st;
  // Fragments never reach a server, nor name a different file.
  if (const size_t hash = spec.find('#'); hash != std::string_view::npos) {
    return ResolveModuleSpecifier(base_dir, spec.substr(0, hash));
  }
  std::string_view base_host, base_path, base_query;
  const bool remote_base = SplitRemote(base_dir, &base_host, &base_path, &base_query);

  if (spec[0] == '.' || spec[0] == '/') {
    if (!remote_base) return AbsPath(base_dir, spec);
    // A path relative to a remote module is a URL on the same host.
    const size_t q = spec.find('?');
    const std::string_view spec_path = spec.substr(0, q);
    const std::string_view spec_query = q == std::string_view::npos ? std::string_view() : spec.substr(q);
    const std::string path =
        spec_path[0] == '/' ? std::string(spec_path) : absl::StrCat(Sv(base_path), "/", Sv(spec_path));
    return RemoteKey(base_host, path, spec_query, spec);
  }

  if (const size_t colon = spec.find("://"); colon != std::string_view::npos) {
    std::string scheme(spec.substr(0, colon));
    for (char& c : scheme) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    if (scheme == "file") {
      if (remote_base) {
        return absl::InvalidArgumentError(absl::StrCat("origin (", Sv(base_dir),
                                                       absl::EndsWith(Sv(base_dir), "/") ? "" : "/",
                                                       ") not allowed to load local file: ", Sv(spec)));
      }
      absl::StatusOr<std::string> path = PercentDecode(spec.substr(colon + 3));
      if (!path.ok()) return path.status();
      if (absl::Status st = CheckNoNul(*path); !st.ok()) return st;
      return AbsPath(base_dir, *path);
    }
    if (scheme == "https") {
      std::string_view host, path, query;
      const std::string lowered = absl::StrCat(Sv(kHttps), Sv(spec.substr(colon + 3)));
      if (!SplitRemote(lowered, &host, &path, &query)) {
        return absl::InvalidArgumentError(absl::StrCat("The moduleSpecifier \"", Sv(spec),
                                                       "\" couldn't be recognised as something k6 supports."));
      }
      return RemoteKey(host, path, query, spec);
    }
    return absl::InvalidArgumentError(absl::StrCat("only supported schemes for imports are file and https, ",
                                                   Sv(spec), " has `", scheme, "`"));
  }
  if (absl::StartsWith(Sv(spec), "cdnjs.com")) {
    return absl::InvalidArgumentError(
        "cdnjs.com 'special' urls are no longer supported - please use real ones. You can get yours by "
        "going to cdnjs and copy-pasting the full url to the actual JavaScript file");
  }
  if (absl::StartsWith(Sv(spec), "github.com")) {
    return absl::InvalidArgumentError(
        "github.com 'special' urls are no longer supported - please use real ones. You can get yours by "
        "going to github and copy-pasting the full url to the actual raw JavaScript file");
  }
  return absl::InvalidArgumentError(
      absl::StrCat("The moduleSpecifier \"", Sv(spec), "\" couldn't be recognised as something k6 supports."));
}

absl::StatusOr<std::string> ResolveFilePath(std::string_view base_dir, std::string_view path) {
  if (absl::StartsWith(Sv(path), Sv(kFile))) path.remove_prefix(kFile.size());
  if (absl::Status st = CheckNoNul(path); !st.ok()) return st;
  return AbsPath(base_dir, path);
}

}  // namespace barrage
