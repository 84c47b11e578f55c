// k6/encoding (k6's internal/js/modules/k6/encoding): b64encode and
// b64decode in Go's four base64 variants. Native: a script may encode every
// request's payload.
#include "agent/js/cesu8.h"
#include "agent/js/runtime.h"
#include "agent/js/values.h"
#include "common/base64.h"

namespace barrage::agent::js {
namespace {

// k6 falls back to the padded standard alphabet for any other name.
Base64Variant VariantAt(duk_context* ctx, duk_idx_t idx) {
  const std::string name = duk_is_string(ctx, idx) ? duk_get_string(ctx, idx) : "";
  if (name == "rawstd") return Base64Variant::kRawStd;
  if (name == "url") return Base64Variant::kUrl;
  if (name == "rawurl") return Base64Variant::kRawUrl;
  return Base64Variant::kStd;
}

// b64encode(input: string | ArrayBuffer, encoding?) -> string
absl::StatusOr<int> EncodeImpl(duk_context* ctx, Runtime&) {
  absl::StatusOr<std::string> bytes = BytesOf(ctx, 0);
  if (!bytes.ok()) return bytes.status();
  const std::string text = Base64Encode(*bytes, VariantAt(ctx, 1));
  duk_push_lstring(ctx, text.data(), text.size());
  return 1;
}

// b64decode(input: string, encoding?, format?) -> ArrayBuffer, or a string
// with format "s".
absl::StatusOr<int> DecodeImpl(duk_context* ctx, Runtime&) {
  duk_size_t len = 0;
  const char* text = duk_safe_to_lstring(ctx, 0, &len);
  absl::StatusOr<std::string> bytes = Base64Decode(Utf8FromJs(std::string_view(text, len)), VariantAt(ctx, 1));
  if (!bytes.ok()) return bytes.status();
  if (duk_is_string(ctx, 2) && std::string_view(duk_get_string(ctx, 2)) == "s") {
    PushUtf8Lossy(ctx, *bytes);
  } else {
    PushArrayBuffer(ctx, *bytes);
  }
  return 1;
}

}  // namespace

void InstallEncodingModule(duk_context* ctx) {
  // [.. __b]
  duk_get_prop_string(ctx, -1, "modules");
  duk_push_object(ctx);
  PutFunction(ctx, -1, "b64encode", Native<EncodeImpl>, 2);
  PutFunction(ctx, -1, "b64decode", Native<DecodeImpl>, 3);
  duk_put_prop_string(ctx, -2, "k6/encoding");
  duk_pop(ctx);
}

}  // namespace barrage::agent::js
