#include "common/fetch/remote_modules.h"

#include <curl/curl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/log.h"

namespace barrage {
namespace {

constexpr char kHttps[] = "https://";

struct Body {
  std::string data;
  size_t max_bytes = 0;
  bool too_big = false;
};

size_t OnData(char* ptr, size_t size, size_t nmemb, void* userdata) {
  auto* body = static_cast<Body*>(userdata);
  const size_t n = size * nmemb;
  if (body->data.size() + n > body->max_bytes) {
    body->too_big = true;
    return 0;  // libcurl stops with CURLE_WRITE_ERROR
  }
  body->data.append(ptr, n);
  return n;
}

// curl_global_init is not thread-safe and must run once before any handle.
void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

// url with k6's marker added to its query: k6 asks "?_k6=1" first, so that
// servers may answer k6 differently, and retries without it.
std::string WithK6Marker(const std::string& url) {
  return absl::StrCat(url, url.find('?') == std::string::npos ? "?" : "&", "_k6=1");
}

absl::StatusOr<std::string> ReadWhole(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(path);
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return absl::DataLossError(absl::StrCat("read ", path, ": ", std::strerror(errno)));
  return ss.str();
}

// Written beside its final name and renamed into place, so a reader (or a
// second barrage sharing the folder) never sees half a module.
absl::Status WriteAtomically(const std::string& path, const std::string& data) {
  std::error_code ec;
  std::filesystem::create_directories(std::filesystem::path(path).parent_path(), ec);
  if (ec) return absl::InternalError(absl::StrCat("mkdir ", std::filesystem::path(path).parent_path().string(), ": ", ec.message()));
  const std::string tmp = absl::StrCat(path, ".tmp.", ::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << data;
    out.close();
    if (!out) return absl::InternalError(absl::StrCat("write ", tmp, ": ", std::strerror(errno)));
  }
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    std::filesystem::remove(tmp, ec);
    return absl::InternalError(absl::StrCat("rename to ", path, ": ", ec.message()));
  }
  return absl::OkStatus();
}

}  // namespace

std::string RemoteModuleCachePath(const std::string& cache_dir, const std::string& url) {
  std::string rest = url.rfind(kHttps, 0) == 0 ? url.substr(sizeof(kHttps) - 1) : url;
  const size_t q = rest.find('?');
  if (q != std::string::npos) {
    rest = absl::StrCat(rest.substr(0, q), absl::StrReplaceAll(rest.substr(q), {{"/", "%2F"}}));
  }
  return absl::StrCat(cache_dir, "/https/", rest);
}

absl::StatusOr<std::string> HttpsGet(const std::string& url, const RemoteModuleOptions& options) {
  GlobalInit();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("libcurl: cannot create a handle");
  Body body;
  body.max_bytes = options.max_bytes;
  char error[CURL_ERROR_SIZE] = {};
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a threaded process
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);  // Go's http.Client stops after 10 too
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(options.timeout)));
  curl_easy_setopt(curl, CURLOPT_ACCEPT_ENCODING, "");  // whatever libcurl decodes
  curl_easy_setopt(curl, CURLOPT_USERAGENT, options.user_agent.c_str());
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, OnData);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &body);
  // libcurl reads no certificate variables itself; Go (k6) reads these two.
  if (const char* file = std::getenv("SSL_CERT_FILE"); file != nullptr && *file != '\0') {
    curl_easy_setopt(curl, CURLOPT_CAINFO, file);
  }
  if (const char* dir = std::getenv("SSL_CERT_DIR"); dir != nullptr && *dir != '\0') {
    curl_easy_setopt(curl, CURLOPT_CAPATH, dir);
  }
  const CURLcode rc = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_easy_cleanup(curl);

  if (body.too_big) {
    return absl::UnavailableError(absl::StrCat(url, ": module is larger than ", options.max_bytes, " bytes"));
  }
  if (rc != CURLE_OK) {
    const std::string why = error[0] != '\0' ? std::string(error) : std::string(curl_easy_strerror(rc));
    return absl::UnavailableError(absl::StrCat("Get \"", url, "\": ", why));
  }
  if (status == 404) return absl::UnavailableError(absl::StrCat("not found: ", url));
  if (status != 200) return absl::UnavailableError(absl::StrCat("wrong status code (", status, ") for: ", url));
  return std::move(body.data);
}

absl::StatusOr<std::string> LoadRemoteModule(const std::string& url, const RemoteModuleOptions& options) {
  const std::string cached = options.cache_dir.empty() ? "" : RemoteModuleCachePath(options.cache_dir, url);
  if (!cached.empty()) {
    absl::StatusOr<std::string> hit = ReadWhole(cached);
    if (hit.ok()) {
      barrage::Log(Severity::kDebug, absl::StrCat("module ", url, " from the cache: ", cached));
      return hit;
    }
  }
  absl::StatusOr<std::string> data = HttpsGet(WithK6Marker(url), options);
  // Some servers refuse query strings they do not know: k6 tries again without.
  if (!data.ok()) data = HttpsGet(url, options);
  if (!data.ok()) return data.status();
  if (!cached.empty()) {
    if (absl::Status st = WriteAtomically(cached, *data); !st.ok()) {
      barrage::Log(Severity::kWarning, absl::StrCat("module cache: cannot store ", url, ": ", st.message()));
    }
  }
  return data;
}

}  // namespace barrage
