// How a script's paths become the keys Barrage reads and archives, as k6
// resolves them (K6_API.md §1.3, §1.4, §3.4; k6's lib/fsext.Abs,
// internal/loader.Resolve, js/common.InitEnvironment.GetAbsFilePath).
//
// Two kinds of key name what a test reads:
//   - a local file: an absolute, clean path ("/home/u/test/protos/x.proto"):
//     it starts with '/', and has no empty, "." or ".." component;
//   - a remote module: an https URL with a clean path
//     ("https://jslib.k6.io/k6-utils/1.4.0/index.js", a query kept as is).
// The archive stores exactly these keys (common/archive.h), so a run from an
// archive finds what the first init pass read under the same names.
//
// Pure functions of their arguments: no disk, no network, any thread.
#ifndef BARRAGE_COMMON_PATHS_H_
#define BARRAGE_COMMON_PATHS_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace barrage {

// Go's path.Clean: the shortest path equivalent to path by purely lexical
// processing ("a//b" -> "a/b", "a/./b" -> "a/b", "a/x/../b" -> "a/b", "/.."
// -> "/"); "" -> ".". A relative path keeps its leading "..".
std::string CleanPath(std::string_view path);

// k6's fsext.Abs: path if absolute, else root joined with path; cleaned.
// root is a directory (absolute). A leading "file://" is not stripped here.
std::string AbsPath(std::string_view root, std::string_view path);

// Go's path.Join of two parts, cleaned ("" parts are skipped): how k6's
// protobuf resolver joins an import path with a proto file name, so that
// an absolute file name lands *below* the import path
// (JoinPath("/some/dir", "/some/dir/x.proto") == "/some/dir/some/dir/x.proto").
std::string JoinPath(std::string_view dir, std::string_view name);

// The directory of a key: "/a/b/c.js" -> "/a/b", "/c.js" -> "/",
// "https://h/a/b.js" -> "https://h/a".
std::string DirOf(std::string_view key);

// True for an absolute, clean local path (no empty, "." or ".." component,
// no NUL): the form of a local key.
bool IsCleanAbsolutePath(std::string_view path);

// True for a remote module key: "https://" + a host (letters, digits,
// '.', '-', '_', ':', '[', ']') + a clean absolute path, optionally
// followed by "?query"; no NUL, no '#'.
bool IsRemoteKey(std::string_view key);

// Resolves an import specifier (`import ... from 'spec'`, `require('spec')`)
// against the directory of the importing module (a local dir or an https
// URL dir), as k6's loader.Resolve does:
//   "./x.js", "../x.js", "/x.js", ".x.js"  a path, relative to base_dir
//   "file:///abs/x.js"                      a local file (percent-escapes decoded)
//   "https://host/x.js"                     a remote module
// and refuses, with k6's texts:
//   other schemes   "only supported schemes for imports are file and https, <spec> has `<scheme>`"
//   file from https "origin (<base>/) not allowed to load local file: <spec>"
//   github.com/..., cdnjs.com/...   "github.com 'special' urls are no longer supported - ..."
//   anything else   "The moduleSpecifier \"<spec>\" couldn't be recognised as something k6 supports."
// Built-in names ("k6", "k6/...") are the caller's to catch first.
// Returns the module's key (see above); errors are kInvalidArgument.
absl::StatusOr<std::string> ResolveModuleSpecifier(std::string_view base_dir, std::string_view spec);

// Resolves a file path a script gives to open(), client.load() or
// client.loadProtoset() against base_dir (a local directory): a leading
// "file://" is stripped, a relative path joined to base_dir, and the result
// cleaned. kInvalidArgument for a path holding NUL (it would name another
// file to the OS than the one the script named).
absl::StatusOr<std::string> ResolveFilePath(std::string_view base_dir, std::string_view path);

}  // namespace barrage

#endif  // BARRAGE_COMMON_PATHS_H_
