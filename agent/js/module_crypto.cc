// k6/crypto (k6's internal/js/modules/k6/crypto): digests, HMAC, random
// bytes and hex, over OpenSSL (already linked for gRPC's TLS). Native, with
// k6's names, output encodings and error texts.
//
// MD4 lives in OpenSSL 3's legacy provider. Loading that into the default
// library context would change what every other OpenSSL user in the process
// (gRPC's TLS) can negotiate, so k6/crypto fetches all its algorithms from a
// library context of its own with the default and legacy providers.
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include <map>
#include <memory>
#include <string>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "agent/js/runtime.h"
#include "agent/js/values.h"
#include "common/base64.h"

namespace barrage::agent::js {
namespace {

// The library context and the digests fetched from it, made once per
// process and kept for its life (EVP_MD objects are shared, thread-safe).
struct Algorithms {
  OSSL_LIB_CTX* libctx = nullptr;
  EVP_MAC* hmac = nullptr;
  std::map<std::string, EVP_MD*> digests;  // k6 name -> digest, nullptr if unavailable
};

const Algorithms& Algos() {
  static const Algorithms* algos = [] {
    auto* a = new Algorithms();
    a->libctx = OSSL_LIB_CTX_new();
    if (a->libctx != nullptr) {
      OSSL_PROVIDER_load(a->libctx, "default");
      OSSL_PROVIDER_load(a->libctx, "legacy");  // MD4; may be absent: MD4 then fails alone
    }
    const std::pair<const char*, const char*> names[] = {
        {"md4", "MD4"},         {"md5", "MD5"},       {"sha1", "SHA1"},
        {"sha256", "SHA256"},   {"sha384", "SHA384"}, {"sha512", "SHA512"},
        {"sha512_224", "SHA512-224"}, {"sha512_256", "SHA512-256"}, {"ripemd160", "RIPEMD160"},
    };
    for (const auto& [k6, ossl] : names) a->digests[k6] = EVP_MD_fetch(a->libctx, ossl, nullptr);
    a->hmac = EVP_MAC_fetch(a->libctx, "HMAC", nullptr);
    return a;
  }();
  return *algos;
}

// k6's algorithm names. nullptr: not one of them (or not in this OpenSSL).
const EVP_MD* DigestNamed(const std::string& name) {
  auto it = Algos().digests.find(name);
  return it == Algos().digests.end() ? nullptr : it->second;
}

// One hash or HMAC in progress (a Hasher in k6). Owned by its JS object,
// freed by that object's finalizer.
struct HashState {
  std::string algorithm;
  EVP_MD_CTX* md = nullptr;
  EVP_MAC_CTX* mac = nullptr;
  ~HashState() {
    EVP_MD_CTX_free(md);
    EVP_MAC_CTX_free(mac);
  }
  bool Update(const std::string& data) {
    return md != nullptr ? EVP_DigestUpdate(md, data.data(), data.size()) == 1
                         : EVP_MAC_update(mac, reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  }
  // The digest so far, leaving the state as it was: Go's Sum appends to
  // nothing and keeps hashing, so k6 scripts may digest twice or go on.
  absl::StatusOr<std::string> Sum() const {
    unsigned char out[EVP_MAX_MD_SIZE];
    if (md != nullptr) {
      std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> copy(EVP_MD_CTX_new(), EVP_MD_CTX_free);
      unsigned int len = 0;
      if (!copy || EVP_MD_CTX_copy_ex(copy.get(), md) != 1 || EVP_DigestFinal_ex(copy.get(), out, &len) != 1) {
        return absl::InternalError(absl::StrCat(algorithm, ": digest failed"));
      }
      return std::string(reinterpret_cast<char*>(out), len);
    }
    std::unique_ptr<EVP_MAC_CTX, decltype(&EVP_MAC_CTX_free)> copy(EVP_MAC_CTX_dup(mac), EVP_MAC_CTX_free);
    size_t len = 0;
    if (!copy || EVP_MAC_final(copy.get(), out, &len, sizeof(out)) != 1) {
      return absl::InternalError(absl::StrCat(algorithm, ": hmac failed"));
    }
    return std::string(reinterpret_cast<char*>(out), len);
  }
};

constexpr char kStateKey[] = "\xff" "state";

duk_ret_t FinalizeState(duk_context* ctx) {
  duk_get_prop_string(ctx, 0, kStateKey);
  delete static_cast<HashState*>(duk_get_pointer(ctx, -1));
  duk_pop(ctx);
  duk_push_pointer(ctx, nullptr);
  duk_put_prop_string(ctx, 0, kStateKey);
  return 0;
}

// Pushes a handle object that owns state (the JS half wraps it).
void PushState(duk_context* ctx, std::unique_ptr<HashState> state) {
  duk_push_object(ctx);
  duk_push_pointer(ctx, state.release());
  duk_put_prop_string(ctx, -2, kStateKey);
  duk_push_c_function(ctx, FinalizeState, 1);
  duk_set_finalizer(ctx, -2);
}

absl::StatusOr<HashState*> StateAt(duk_context* ctx, duk_idx_t idx) {
  if (!duk_is_object(ctx, idx)) return absl::InvalidArgumentError("TypeError: not a Hasher");
  duk_get_prop_string(ctx, idx, kStateKey);
  auto* state = static_cast<HashState*>(duk_get_pointer(ctx, -1));
  duk_pop(ctx);
  if (state == nullptr) return absl::InvalidArgumentError("TypeError: not a Hasher");
  return state;
}

absl::StatusOr<std::unique_ptr<HashState>> NewHash(const std::string& algorithm) {
  const EVP_MD* digest = DigestNamed(algorithm);
  if (digest == nullptr) return absl::InvalidArgumentError(absl::StrCat("invalid algorithm: ", algorithm));
  auto state = std::make_unique<HashState>();
  state->algorithm = algorithm;
  state->md = EVP_MD_CTX_new();
  if (state->md == nullptr || EVP_DigestInit_ex(state->md, digest, nullptr) != 1) {
    return absl::InternalError(absl::StrCat(algorithm, ": cannot start the digest"));
  }
  return state;
}

absl::StatusOr<std::unique_ptr<HashState>> NewHmac(const std::string& algorithm, const std::string& key) {
  const EVP_MD* digest = DigestNamed(algorithm);
  if (digest == nullptr || Algos().hmac == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("invalid algorithm: ", algorithm));
  }
  auto state = std::make_unique<HashState>();
  state->algorithm = algorithm;
  state->mac = EVP_MAC_CTX_new(Algos().hmac);
  std::string md_name = EVP_MD_get0_name(digest);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", md_name.data(), 0), OSSL_PARAM_construct_end()};
  // An empty key is a valid HMAC key; OpenSSL wants a non-null pointer for it.
  static const unsigned char kEmpty = 0;
  const auto* k = key.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(key.data());
  if (state->mac == nullptr || EVP_MAC_init(state->mac, k, key.size(), params) != 1) {
    return absl::InternalError(absl::StrCat(algorithm, ": cannot start the hmac"));
  }
  return state;
}

// Digest(outputEncoding) in k6: hex, base64, base64url, base64rawurl, or
// binary (an ArrayBuffer).
absl::StatusOr<int> PushDigest(duk_context* ctx, const std::string& sum, duk_idx_t encoding_idx) {
  const std::string encoding = duk_is_string(ctx, encoding_idx) ? duk_get_string(ctx, encoding_idx) : "";
  std::string text;
  if (encoding == "hex") {
    text = absl::BytesToHexString(sum);
  } else if (encoding == "base64") {
    text = Base64Encode(sum, Base64Variant::kStd);
  } else if (encoding == "base64url") {
    text = Base64Encode(sum, Base64Variant::kUrl);
  } else if (encoding == "base64rawurl") {
    text = Base64Encode(sum, Base64Variant::kRawUrl);
  } else if (encoding == "binary") {
    PushArrayBuffer(ctx, sum);
    return 1;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("invalid output encoding: ", encoding));
  }
  duk_push_lstring(ctx, text.data(), text.size());
  return 1;
}

// createHash(algorithm) -> handle
absl::StatusOr<int> CreateHashImpl(duk_context* ctx, Runtime&) {
  absl::StatusOr<std::unique_ptr<HashState>> state = NewHash(duk_safe_to_string(ctx, 0));
  if (!state.ok()) return state.status();
  PushState(ctx, *std::move(state));
  return 1;
}

// createHMAC(algorithm, key) -> handle
absl::StatusOr<int> CreateHmacImpl(duk_context* ctx, Runtime&) {
  const std::string algorithm = duk_safe_to_string(ctx, 0);
  if (DigestNamed(algorithm) == nullptr) return absl::InvalidArgumentError(absl::StrCat("invalid algorithm: ", algorithm));
  absl::StatusOr<std::string> key = BytesOf(ctx, 1);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::unique_ptr<HashState>> state = NewHmac(algorithm, *key);
  if (!state.ok()) return state.status();
  PushState(ctx, *std::move(state));
  return 1;
}

// update(handle, input)
absl::StatusOr<int> UpdateImpl(duk_context* ctx, Runtime&) {
  absl::StatusOr<HashState*> state = StateAt(ctx, 0);
  if (!state.ok()) return state.status();
  absl::StatusOr<std::string> data = BytesOf(ctx, 1);
  if (!data.ok()) return data.status();
  if (!(*state)->Update(*data)) return absl::InternalError(absl::StrCat((*state)->algorithm, ": update failed"));
  return 0;
}

// digest(handle, outputEncoding)
absl::StatusOr<int> DigestImpl(duk_context* ctx, Runtime&) {
  absl::StatusOr<HashState*> state = StateAt(ctx, 0);
  if (!state.ok()) return state.status();
  absl::StatusOr<std::string> sum = (*state)->Sum();
  if (!sum.ok()) return sum.status();
  return PushDigest(ctx, *sum, 1);
}

// The one-shot helpers: md5(input, enc) etc. Errors in the input read
// "<alg> failed: invalid type ...", as k6's buildInputsDigest wraps them.
absl::StatusOr<int> OneShotImpl(duk_context* ctx, Runtime&) {
  const std::string algorithm = duk_safe_to_string(ctx, 0);
  absl::StatusOr<std::unique_ptr<HashState>> state = NewHash(algorithm);
  if (!state.ok()) return state.status();
  absl::StatusOr<std::string> data = BytesOf(ctx, 1);
  if (!data.ok()) return absl::InvalidArgumentError(absl::StrCat(algorithm, " failed: ", data.status().message()));
  if (!(*state)->Update(*data)) return absl::InternalError(absl::StrCat(algorithm, ": update failed"));
  absl::StatusOr<std::string> sum = (*state)->Sum();
  if (!sum.ok()) return sum.status();
  return PushDigest(ctx, *sum, 2);
}

// hmac(algorithm, key, input, outputEncoding)
absl::StatusOr<int> HmacImpl(duk_context* ctx, Runtime&) {
  const std::string algorithm = duk_safe_to_string(ctx, 0);
  if (DigestNamed(algorithm) == nullptr) return absl::InvalidArgumentError(absl::StrCat("invalid algorithm: ", algorithm));
  absl::StatusOr<std::string> key = BytesOf(ctx, 1);
  if (!key.ok()) return key.status();
  absl::StatusOr<std::unique_ptr<HashState>> state = NewHmac(algorithm, *key);
  if (!state.ok()) return state.status();
  absl::StatusOr<std::string> data = BytesOf(ctx, 2);
  if (!data.ok()) return data.status();
  if (!(*state)->Update(*data)) return absl::InternalError(absl::StrCat(algorithm, ": update failed"));
  absl::StatusOr<std::string> sum = (*state)->Sum();
  if (!sum.ok()) return sum.status();
  return PushDigest(ctx, *sum, 3);
}

// randomBytes(size) -> ArrayBuffer of size bytes from OpenSSL's CSPRNG
// (k6: crypto/rand). Go converts the argument to an int, truncating.
absl::StatusOr<int> RandomBytesImpl(duk_context* ctx, Runtime&) {
  const double size = duk_to_number(ctx, 0);
  if (!(size >= 1)) return absl::InvalidArgumentError("invalid size");
  // Bounded so a mistaken argument is an error, not an out-of-memory abort.
  if (size > double{1 << 30}) return absl::InvalidArgumentError("invalid size: at most 1 GiB");
  std::string bytes(static_cast<size_t>(size), '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(bytes.data()), static_cast<int>(bytes.size())) != 1) {
    return absl::InternalError("randomBytes: the random generator failed");
  }
  PushArrayBuffer(ctx, bytes);
  return 1;
}

// hexEncode(data: string | ArrayBuffer) -> string
absl::StatusOr<int> HexEncodeImpl(duk_context* ctx, Runtime&) {
  absl::StatusOr<std::string> data = BytesOf(ctx, 0);
  if (!data.ok()) return data.status();
  const std::string hex = absl::BytesToHexString(*data);
  duk_push_lstring(ctx, hex.data(), hex.size());
  return 1;
}

constexpr char kCryptoJs[] = R"JS(
(function (b) {
  var c = b.crypto;
  // k6's Hasher: update(input) and digest(outputEncoding).
  function Hasher(handle) { Object.defineProperty(this, '_h', { value: handle }); }
  Hasher.prototype.update = function (input) { c.update(this._h, input); };
  Hasher.prototype.digest = function (encoding) { return c.digest(this._h, encoding); };
  function oneShot(alg) { return function (input, encoding) { return c.oneShot(alg, input, encoding); }; }
  var m = {
    createHash: function (alg) { return new Hasher(c.createHash(alg)); },
    createHMAC: function (alg, key) { return new Hasher(c.createHMAC(alg, key)); },
    hmac: function (alg, key, input, encoding) { return c.hmac(alg, key, input, encoding); },
    randomBytes: function (size) { return c.randomBytes(size); },
    hexEncode: function (data) { return c.hexEncode(data); }
  };
  ['md4', 'md5', 'sha1', 'sha256', 'sha384', 'sha512', 'sha512_224', 'sha512_256', 'ripemd160'].forEach(function (alg) {
    m[alg] = oneShot(alg);
  });
  b.modules['k6/crypto'] = m;
})
)JS";

}  // namespace

void InstallCryptoModule(duk_context* ctx) {
  // [.. __b]
  duk_push_object(ctx);
  PutFunction(ctx, -1, "createHash", Native<CreateHashImpl>, 1);
  PutFunction(ctx, -1, "createHMAC", Native<CreateHmacImpl>, 2);
  PutFunction(ctx, -1, "update", Native<UpdateImpl>, 2);
  PutFunction(ctx, -1, "digest", Native<DigestImpl>, 2);
  PutFunction(ctx, -1, "oneShot", Native<OneShotImpl>, 3);
  PutFunction(ctx, -1, "hmac", Native<HmacImpl>, 4);
  PutFunction(ctx, -1, "randomBytes", Native<RandomBytesImpl>, 1);
  PutFunction(ctx, -1, "hexEncode", Native<HexEncodeImpl>, 1);
  duk_put_prop_string(ctx, -2, "crypto");
  RunEmbeddedInstaller(ctx, "barrage:k6/crypto.js", kCryptoJs);
}

}  // namespace barrage::agent::js
