#include "agent/js/transform_cache.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace barrage::agent::js {
namespace {

// "barrage-transform-cache 1 <length> <sha256 of the code>\n", then the code.
constexpr absl::string_view kMagic = "barrage-transform-cache 1 ";

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::UnavailableError(absl::StrCat(what, " ", path, ": ", strerror(errno)));
}

bool WriteAll(int fd, absl::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace

std::string Sha256Hex(std::initializer_list<absl::string_view> parts) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (absl::string_view p : parts) {
    // Each part is preceded by its length, so ("ab","c") and ("a","bc") differ.
    const std::string len = absl::StrCat(p.size(), ":");
    EVP_DigestUpdate(ctx, len.data(), len.size());
    EVP_DigestUpdate(ctx, p.data(), p.size());
  }
  EVP_DigestFinal_ex(ctx, digest, &size);
  EVP_MD_CTX_free(ctx);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < size; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 15]);
  }
  return out;
}

std::optional<std::string> TransformCache::Get(const std::string& key) const {
  std::ifstream in(PathOf(key), std::ios::binary);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return std::nullopt;
  std::string entry = ss.str();
  absl::string_view view(entry);
  size_t newline = view.find('\n');
  if (!absl::StartsWith(view, kMagic) || newline == absl::string_view::npos) return std::nullopt;
  absl::string_view header = view.substr(kMagic.size(), newline - kMagic.size());
  size_t space = header.find(' ');
  uint64_t length = 0;
  if (space == absl::string_view::npos || !absl::SimpleAtoi(header.substr(0, space), &length)) return std::nullopt;
  absl::string_view code = view.substr(newline + 1);
  if (code.size() != length || Sha256Hex({code}) != header.substr(space + 1)) return std::nullopt;
  return std::string(code);
}

absl::Status TransformCache::Put(const std::string& key, absl::string_view code) const {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir_, ": ", ec.message()));
  chmod(dir_.c_str(), 0700);
  std::string tmp = dir_ + "/.tmp-XXXXXX";
  int fd = mkstemp(tmp.data());
  if (fd < 0) return Errno("cannot create a file in", dir_);
  const std::string header = absl::StrCat(kMagic, code.size(), " ", Sha256Hex({code}), "\n");
  bool ok = WriteAll(fd, header) && WriteAll(fd, code);
  ok = (close(fd) == 0) && ok;
  if (!ok) {
    absl::Status st = Errno("cannot write", tmp);
    unlink(tmp.c_str());
    return st;
  }
  // rename() replaces atomically: a concurrent reader sees the old entry,
  // the new one or none, never half of one; two writers of one key write
  // the same bytes.
  if (rename(tmp.c_str(), PathOf(key).c_str()) != 0) {
    absl::Status st = Errno("cannot rename to", PathOf(key));
    unlink(tmp.c_str());
    return st;
  }
  return absl::OkStatus();
}

}  // namespace barrage::agent::js
