// Remote modules (`import { uuidv4 } from 'https://jslib.k6.io/...'`) for
// the controller's first init pass: fetched over HTTPS with libcurl as k6's
// loader fetches them (internal/loader: "?_k6=1" first, then the bare URL;
// only 200 counts; a minute at most), optionally through a cache folder so
// that machines without network run tests whose modules were fetched once.
// Agents never use this: the archive carries every module.
//
// Its own library (barrage::fetch) because it brings libcurl, which only
// the `barrage` binary needs.
//
// The cache folder mirrors a k6 archive's layout: the module
// https://jslib.k6.io/k6-utils/1.4.0/index.js lives in
// <dir>/https/jslib.k6.io/k6-utils/1.4.0/index.js (a query string is kept
// in the file name, '/' in it written as %2F). A module found there is used
// as it is, without the network: module URLs name versions, and deleting
// the file fetches it again. A folder committed beside the tests works as
// a vendor folder the same way.
//
// TLS: the system's CA bundle, or the file named by SSL_CERT_FILE (and the
// directory named by SSL_CERT_DIR), the variables Go, and so k6, reads.
// Proxies: libcurl's https_proxy/no_proxy variables.
#ifndef BARRAGE_COMMON_FETCH_REMOTE_MODULES_H_
#define BARRAGE_COMMON_FETCH_REMOTE_MODULES_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace barrage {

struct RemoteModuleOptions {
  std::string cache_dir;                    // empty: no cache, always fetch
  absl::Duration timeout = absl::Minutes(1);  // per request, as k6's
  size_t max_bytes = size_t{16} << 20;      // a module larger than this is refused
  std::string user_agent = "barrage";
};

// Where the cache keeps url (an https key, common/paths.h) under cache_dir.
std::string RemoteModuleCachePath(const std::string& cache_dir, const std::string& url);

// The body of a GET of url over HTTPS (redirects followed, https only).
// Errors are kUnavailable with the reason as k6 words it:
//   "not found: <url>"                      (404)
//   "wrong status code (503) for: <url>"    (any other status than 200)
//   "Get \"<url>\": <libcurl's reason>"     (DNS, refused, TLS, timeout)
//   "<url>: module is larger than N bytes"
absl::StatusOr<std::string> HttpsGet(const std::string& url, const RemoteModuleOptions& options);

// The source of the remote module url: from the cache folder if it holds
// it; else fetched as k6 does (url with "_k6=1" added to its query, then
// url itself if that fails) and, with a cache folder, written there (a
// cache that cannot be written is a warning, not an error). Errors as
// HttpsGet's, from the second try. Thread-compatible: one caller at a time.
absl::StatusOr<std::string> LoadRemoteModule(const std::string& url, const RemoteModuleOptions& options);

}  // namespace barrage

#endif  // BARRAGE_COMMON_FETCH_REMOTE_MODULES_H_
