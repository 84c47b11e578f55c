// Base64 as Go's encoding/base64 does it, in its four variants, because k6's
// k6/encoding and k6/crypto expose exactly those (std, rawstd, url, rawurl)
// and scripts compare the texts. Hand-written: OpenSSL's EVP_EncodeBlock
// knows only the padded standard alphabet, and its decoder accepts what Go
// refuses (missing padding, '=' inside the data).
#ifndef BARRAGE_COMMON_BASE64_H_
#define BARRAGE_COMMON_BASE64_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace barrage {

enum class Base64Variant {
  kStd,     // + /, padded       (base64.StdEncoding)
  kRawStd,  // + /, no padding   (base64.RawStdEncoding)
  kUrl,     // - _, padded       (base64.URLEncoding)
  kRawUrl,  // - _, no padding   (base64.RawURLEncoding)
};

std::string Base64Encode(std::string_view data, Base64Variant variant);

// Go's DecodeString: '\r' and '\n' are skipped; anything else outside the
// alphabet, misplaced or missing padding, or a length that cannot be,
// is kInvalidArgument "illegal base64 data at input byte N" (N counted in
// the input, as Go counts it).
absl::StatusOr<std::string> Base64Decode(std::string_view text, Base64Variant variant);

}  // namespace barrage

#endif  // BARRAGE_COMMON_BASE64_H_
