// Babel's results on disk, keyed by content: one file per result, named by
// the SHA-256 of what decides the output (the source, the embedded Babel
// and its options; see Transformer), so a key never needs invalidating and
// the same library under two paths shares its entry.
//
// Safe against concurrent runs: an entry is written to a temporary file in
// the same directory and renamed into place, so readers see a whole entry
// or none. Safe against damage: each entry starts with a header holding
// the length and SHA-256 of the code after it, and an entry that does not
// match (truncated, edited, another format) is ignored and rewritten.
// Nothing is ever required of the cache: every failure to read or write it
// only costs a Babel run. The directory may be deleted at any time.
#ifndef BARRAGE_AGENT_JS_TRANSFORM_CACHE_H_
#define BARRAGE_AGENT_JS_TRANSFORM_CACHE_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace barrage::agent::js {

// Lowercase hex SHA-256 of the concatenation of the parts.
std::string Sha256Hex(std::initializer_list<absl::string_view> parts);

class TransformCache {
 public:
  // dir is created (mode 0700: the cache holds the user's code) on first Put.
  explicit TransformCache(std::string dir) : dir_(std::move(dir)) {}

  // What was stored under key (from Sha256Hex), or nullopt when there is
  // none or it is damaged. The cache does not look inside: Transformer
  // stores a module's line map and code.
  std::optional<std::string> Get(const std::string& key) const;
  // Stores code under key. The error (the directory cannot be made or
  // written) is for tests and logs; callers go on without the cache.
  absl::Status Put(const std::string& key, absl::string_view code) const;

  std::string PathOf(const std::string& key) const { return dir_ + "/" + key + ".js"; }
  const std::string& dir() const { return dir_; }

 private:
  std::string dir_;
};

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_TRANSFORM_CACHE_H_
