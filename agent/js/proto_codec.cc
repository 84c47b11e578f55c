#include "agent/js/proto_codec.h"

#include <algorithm>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "agent/grpc/protojson_values.h"
#include "agent/js/cesu8.h"
#include "agent/js/duktape/duk_config_barrage.h"
#include "agent/js/duktape/object_access.h"
#include "common/status_macros.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/stubs/common.h"
#include "google/protobuf/wire_format_lite.h"

namespace barrage::agent::js {
namespace {

namespace gc = ::barrage::agent::grpc_client;
namespace pb = ::google::protobuf;
using gc::FieldPlan;
using gc::MessagePlan;
using gc::WellKnownType;
using pb::FieldDescriptor;
using pb::io::CodedInputStream;
using pb::io::CodedOutputStream;
using WFL = pb::internal::WireFormatLite;

// Debian's abseil has its own string_view; StrCat needs it spelled out.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// JSON nesting the JSON path accepted (json_codec's parser stops at 1000).
constexpr size_t kMaxJsonDepth = 1000;

// UTF-8 of heap text: the text itself unless it has surrogates (cesu8.h).
std::string_view Utf8View(std::string_view cesu8, std::string* scratch) {
  if (!HasSurrogates(cesu8)) return cesu8;
  *scratch = Utf8FromJs(cesu8);
  return *scratch;
}

// Pushes UTF-8 text as a JS string (surrogate pairs for 4-byte characters).
void PushText(duk_context* ctx, std::string_view utf8) {
  if (HasFourByteSequences(utf8)) {
    const std::string js = Utf8ToJs(utf8);
    duk_push_lstring(ctx, js.data(), js.size());
  } else {
    duk_push_lstring(ctx, utf8.data(), utf8.size());
  }
}

// obj[key] = top (popped), defined as JSON.parse defines it (object_access.h).
void PutKey(duk_context* ctx, duk_idx_t obj, std::string_view key) {
  DefineOwnProperty(ctx, obj, key.data(), key.size());
}

// ---------------------------------------------------------------------------
// Wire output: a byte string written through protobuf's array writers.
// Hand-rolled around them (rather than a CodedOutputStream) because a
// length prefix is only known after its message is written: a byte is kept
// for it and the content moved when the length needs more.

class WireBuffer {
 public:
  WireBuffer() { buf_.resize(256); }
  size_t size() const { return len_; }
  uint8_t* Reserve(size_t n) {
    if (len_ + n > buf_.size()) buf_.resize(std::max(len_ + n, buf_.size() * 4));
    return reinterpret_cast<uint8_t*>(buf_.data()) + len_;
  }
  void Commit(uint8_t* end) { len_ = end - reinterpret_cast<uint8_t*>(buf_.data()); }
  void Truncate(size_t n) { len_ = n; }
  char* data() { return buf_.data(); }
  void Append(const void* p, size_t n) {
    std::memcpy(Reserve(n), p, n);
    len_ += n;
  }
  void Tag(uint32_t tag) { Commit(CodedOutputStream::WriteVarint32ToArray(tag, Reserve(5))); }
  void Varint(uint64_t v) { Commit(CodedOutputStream::WriteVarint64ToArray(v, Reserve(10))); }
  void Fixed32(uint32_t v) { Commit(CodedOutputStream::WriteLittleEndian32ToArray(v, Reserve(4))); }
  void Fixed64(uint64_t v) { Commit(CodedOutputStream::WriteLittleEndian64ToArray(v, Reserve(8))); }
  void Bytes(std::string_view b) {
    Varint(b.size());
    Append(b.data(), b.size());
  }
  // A length-delimited value: BeginLength keeps a byte for its length and
  // returns where the content starts; EndLength writes the length.
  size_t BeginLength() {
    Commit(Reserve(1) + 1);
    return len_;
  }
  bool EndLength(size_t start) {
    const size_t n = len_ - start;
    if (n > static_cast<size_t>(INT32_MAX)) return false;
    const size_t need = CodedOutputStream::VarintSize32(static_cast<uint32_t>(n));
    if (need > 1) {
      Reserve(need - 1);
      std::memmove(buf_.data() + start + need - 1, buf_.data() + start, n);
      len_ += need - 1;
    }
    CodedOutputStream::WriteVarint32ToArray(static_cast<uint32_t>(n),
                                            reinterpret_cast<uint8_t*>(buf_.data()) + start - 1);
    return true;
  }
  std::string Release() && {
    buf_.resize(len_);
    return std::move(buf_);
  }

 private:
  std::string buf_;
  size_t len_ = 0;
};

template <typename To, typename From>
To BitCast(From v) {
  static_assert(sizeof(To) == sizeof(From));
  To out;
  std::memcpy(&out, &v, sizeof(out));
  return out;
}

// ---------------------------------------------------------------------------
// Encoder: a JS value -> wire bytes.

class Encoder {
 public:
  Encoder(duk_context* ctx, const gc::ProtoRegistry& registry, NonFinite non_finite)
      : ctx_(ctx), registry_(registry), non_finite_(non_finite) {}

  absl::Status EncodeTop(duk_idx_t idx, const MessagePlan& plan, WireBuffer& out) {
    duk_require_stack(ctx_, 8);
    duk_dup(ctx_, idx);
    Val v = Classify(duk_get_top_index(ctx_), kTopKey, false);
    if (v.kind == Kind::kAbsent) {
      // What JSON.stringify gives (undefined) and json_codec said of it.
      return absl::InvalidArgumentError("invalid JSON at offset 0: unexpected end of input");
    }
    return EncodeMessage(v, plan, out);
  }

  // A failure that is JSON.stringify's rather than the mapping's.
  bool stringify_failed() const { return stringify_failed_; }

 private:
  // A JS value as JSON.stringify sees it.
  enum class Kind : uint8_t { kAbsent, kNull, kBool, kNumber, kString, kArray, kObject };
  struct Val {
    Kind kind = Kind::kAbsent;
    bool boolean = false;
    bool in_json_result = false;  // inside what a toJSON returned
    duk_idx_t idx = 0;            // where the (normalised) value is on the stack
    double number = 0;
    std::string_view text;        // a string's CESU-8, valid while idx holds it
  };
  // A member of an object being encoded; key and value stay on the stack.
  struct Member {
    std::string_view key;  // CESU-8
    duk_idx_t key_idx;
    Val value;
  };
  struct Segment {
    int number;
    size_t start;
  };
  static constexpr duk_idx_t kTopKey = -1;

  static const char* KindName(Kind k) {
    switch (k) {
      case Kind::kAbsent:
      case Kind::kNull: return "null";
      case Kind::kBool: return "bool";
      case Kind::kNumber: return "number";
      case Kind::kString: return "string";
      case Kind::kArray: return "array";
      case Kind::kObject: return "object";
    }
    return "?";
  }

  // How json_codec shows a value in errors: strings quoted, numbers as JSON
  // wrote them, anything else by kind.
  std::string Shown(const Val& v) {
    if (v.kind == Kind::kString) {
      std::string scratch;
      return absl::StrCat("\"", Av(Utf8View(v.text, &scratch)), "\"");
    }
    if (v.kind == Kind::kNumber) return JsNumberText(v.number);
    return KindName(v.kind);
  }

  // Replaces the value at idx (absolute) with what JSON.stringify would
  // serialise for it: toJSON's result, an unboxed primitive, a buffer as
  // JSON sees it. `key_idx` holds the member name toJSON gets, or it is
  // kTopKey (""), or less than that for array element -2 - key_idx.
  Val Classify(duk_idx_t idx, duk_idx_t key_idx, bool in_json_result) {
    Val v;
    v.idx = idx;
    int type = duk_get_type(ctx_, idx);
    JsonObjectInfo info{JsonObjectKind::kOther, true};
    if (type == DUK_TYPE_OBJECT) info = InspectObjectForJson(ctx_, idx);
    if ((type == DUK_TYPE_OBJECT && info.has_to_json) || type == DUK_TYPE_LIGHTFUNC || type == DUK_TYPE_BUFFER) {
      duk_get_prop_literal(ctx_, idx, "toJSON");
      if (duk_is_callable(ctx_, -1)) {
        duk_dup(ctx_, idx);
        if (key_idx >= 0) {
          duk_dup(ctx_, key_idx);
        } else if (key_idx == kTopKey) {
          duk_push_literal(ctx_, "");
        } else {
          duk_push_uint(ctx_, static_cast<duk_uint_t>(-2 - key_idx));
          duk_to_string(ctx_, -1);
        }
        duk_call_method(ctx_, 1);
        duk_replace(ctx_, idx);
        in_json_result = true;
        type = duk_get_type(ctx_, idx);
        if (type == DUK_TYPE_OBJECT) info = InspectObjectForJson(ctx_, idx);
      } else {
        duk_pop(ctx_);
      }
    }
    v.in_json_result = in_json_result;
    switch (type) {
      case DUK_TYPE_NULL: v.kind = Kind::kNull; return v;
      case DUK_TYPE_BOOLEAN:
        v.kind = Kind::kBool;
        v.boolean = duk_get_boolean(ctx_, idx);
        return v;
      case DUK_TYPE_NUMBER: return Number(duk_get_number(ctx_, idx), v);
      case DUK_TYPE_STRING: return String(v);
      case DUK_TYPE_BUFFER: return ViaJson(v);
      case DUK_TYPE_OBJECT:
        switch (info.kind) {
          case JsonObjectKind::kPlain: v.kind = Kind::kObject; return v;
          case JsonObjectKind::kArray: v.kind = Kind::kArray; return v;
          case JsonObjectKind::kFunction: return v;  // absent, as functions are
          case JsonObjectKind::kBuffer: return ViaJson(v);
          case JsonObjectKind::kNumberObject: return Number(duk_to_number(ctx_, idx), v);  // ToNumber, as JSON does
          case JsonObjectKind::kStringObject:
            duk_to_string(ctx_, idx);  // ToString, as JSON does
            return String(v);
          case JsonObjectKind::kBooleanObject:
            duk_get_prop_literal(ctx_, idx, "\x82Value");
            duk_replace(ctx_, idx);
            v.kind = Kind::kBool;
            v.boolean = duk_get_boolean(ctx_, idx);
            return v;
          case JsonObjectKind::kOther: return Exotic(v);
        }
        return v;
      default: return v;  // undefined, pointer, lightfunc: absent
    }
  }

  Val String(Val v) {
    if (duk_is_symbol(ctx_, v.idx)) return v;  // absent
    duk_size_t n = 0;
    const char* s = duk_get_lstring(ctx_, v.idx, &n);
    v.kind = Kind::kString;
    v.text = std::string_view(s, n);
    return v;
  }

  // Any other object (a Proxy, a Date a toJSON returned, an Error, a Map…),
  // asked through the public API, traps included.
  Val Exotic(Val v) {
    const duk_idx_t idx = v.idx;
    if (duk_is_function(ctx_, idx)) return v;
    if (duk_is_array(ctx_, idx)) {
      v.kind = Kind::kArray;
      return v;
    }
    if (duk_is_buffer_data(ctx_, idx)) return ViaJson(v);
    duk_get_prop_literal(ctx_, idx, "\x82Value");
    const int inner = duk_get_type(ctx_, -1);
    duk_pop(ctx_);
    if (inner == DUK_TYPE_NUMBER || inner == DUK_TYPE_STRING || inner == DUK_TYPE_BOOLEAN) {
      const std::string cls = ClassOf(idx);
      if (cls == "[object Number]") return Number(duk_to_number(ctx_, idx), v);
      if (cls == "[object String]") {
        duk_to_string(ctx_, idx);
        return String(v);
      }
      if (cls == "[object Boolean]") {
        duk_get_prop_literal(ctx_, idx, "\x82Value");
        duk_replace(ctx_, idx);
        v.kind = Kind::kBool;
        v.boolean = duk_get_boolean(ctx_, idx);
        return v;
      }
    }
    v.kind = Kind::kObject;
    return v;
  }

  // Object.prototype.toString of the object at idx: "[object Number]".
  std::string ClassOf(duk_idx_t idx) {
    duk_get_global_literal(ctx_, "Object");
    duk_get_prop_literal(ctx_, -1, "prototype");
    duk_get_prop_literal(ctx_, -1, "toString");
    duk_dup(ctx_, idx);
    duk_call_method(ctx_, 0);
    std::string out = duk_safe_to_string(ctx_, -1);
    duk_pop_3(ctx_);
    return out;
  }

  Val Number(double d, Val v) {
    v.kind = Kind::kNumber;
    v.number = d;
    if (std::isfinite(d)) return v;
    if (non_finite_ == NonFinite::kAsNull || v.in_json_result) {
      v.kind = Kind::kNull;
      return v;
    }
    // k6 v1.2+ turns them into strings before encoding (spec §1.6 step 7).
    v.kind = Kind::kString;
    v.text = std::isnan(d) ? "NaN" : d > 0 ? "Infinity" : "-Infinity";
    return v;
  }

  // A buffer, serialised as JSON.stringify does it and read back.
  Val ViaJson(Val v) {
    duk_dup(ctx_, v.idx);
    duk_json_encode(ctx_, -1);
    if (!duk_is_string(ctx_, -1)) {
      duk_pop(ctx_);
      v.kind = Kind::kAbsent;
      return v;
    }
    duk_json_decode(ctx_, -1);
    duk_replace(ctx_, v.idx);
    return Classify(v.idx, kTopKey, true);
  }

  // Descending into the object or array at idx: cycles and depth.
  absl::Status Enter(duk_idx_t idx) {
    void* p = duk_get_heapptr(ctx_, idx);
    for (void* seen : visiting_) {
      if (seen == p) {
        stringify_failed_ = true;
        return absl::FailedPreconditionError("cyclic reference to an object found");
      }
    }
    if (visiting_.size() >= kMaxJsonDepth || barrage_duk_native_stack_check(0) != 0) {
      return absl::InvalidArgumentError("nested too deeply");
    }
    visiting_.push_back(p);
    duk_require_stack(ctx_, 16);
    return absl::OkStatus();
  }
  void Leave() { visiting_.pop_back(); }

  // The object at idx's members, in JSON.stringify's order, each value
  // classified; left on the stack. Appended to members_; returns where
  // they start.
  size_t CollectMembers(duk_idx_t idx, bool in_json_result) {
    const size_t begin = members_.size();
    const int n = PushOwnEnumerableEntries(ctx_, idx);
    if (n >= 0) {
      const duk_idx_t first = duk_get_top(ctx_) - 2 * n;
      for (int i = 0; i < n; ++i) {
        const duk_idx_t key_idx = first + 2 * i;
        Val v = Classify(key_idx + 1, key_idx, in_json_result);
        if (v.kind == Kind::kAbsent) continue;
        duk_size_t len = 0;
        const char* k = duk_get_lstring(ctx_, key_idx, &len);
        members_.push_back(Member{std::string_view(k, len), key_idx, v});
      }
      return begin;
    }
    // The keys as JSON.stringify lists them (array indices first, a
    // Proxy's ownKeys trap), each value read with [[Get]] (getters, a
    // Proxy's get trap).
    duk_enum(ctx_, idx, DUK_ENUM_OWN_PROPERTIES_ONLY);
    const duk_idx_t e = duk_get_top_index(ctx_);
    while (true) {
      duk_require_stack(ctx_, 8);
      if (!duk_next(ctx_, e, 0)) break;
      duk_dup_top(ctx_);
      duk_get_prop(ctx_, idx);
      const duk_idx_t value_idx = duk_get_top_index(ctx_);
      Val v = Classify(value_idx, value_idx - 1, in_json_result);
      if (v.kind == Kind::kAbsent) {
        duk_pop_2(ctx_);
        continue;
      }
      duk_size_t len = 0;
      const char* k = duk_get_lstring(ctx_, value_idx - 1, &len);
      members_.push_back(Member{std::string_view(k, len), value_idx - 1, v});
    }
    return begin;
  }

  absl::Status UnknownField(std::string_view key, const MessagePlan& plan) {
    std::string scratch;
    return absl::InvalidArgumentError(
        absl::StrCat("unknown field \"", Av(Utf8View(key, &scratch)), "\" in ", plan.descriptor->full_name()));
  }

  absl::Status EncodeMessage(const Val& v, const MessagePlan& plan, WireBuffer& out) {
    if (plan.well_known != WellKnownType::kNone) return EncodeWellKnown(v, plan, out);
    if (v.kind != Kind::kObject) {
      return absl::InvalidArgumentError(absl::StrCat("invalid value for ", plan.descriptor->full_name(),
                                                     ": expected an object, got ", KindName(v.kind)));
    }
    BARRAGE_RETURN_IF_ERROR(Enter(v.idx));
    const size_t begin = CollectMembers(v.idx, v.in_json_result);
    absl::Status st = EncodeFields(begin, plan, out, /*skip_type=*/false);
    members_.resize(begin);
    Leave();
    return st;
  }

  // Writes members_[begin..] as fields of plan, in field-number order as
  // protobuf serialises them.
  absl::Status EncodeFields(size_t begin, const MessagePlan& plan, WireBuffer& out, bool skip_type) {
    const size_t end = members_.size();
    const size_t seg_begin = segments_.size();
    absl::InlinedVector<bool, 32> seen(plan.fields.size(), false);
    absl::InlinedVector<bool, 8> seen_oneof(plan.oneof_names.size(), false);
    size_t next = 0;  // scripts mostly write fields in declaration order
    for (size_t i = begin; i < end; ++i) {
      const Member m = members_[i];
      if (skip_type && m.key == "@type") continue;
      const FieldPlan* f = nullptr;
      if (next < plan.fields.size() && plan.fields[next].json_name == m.key) {
        f = &plan.fields[next];
      } else {
        f = plan.FieldByName(m.key);
      }
      if (f != nullptr) next = f->index + 1;
      if (f == nullptr) return UnknownField(m.key, plan);
      if (seen[f->index]) {
        std::string scratch;
        return absl::InvalidArgumentError(absl::StrCat("duplicate field \"", Av(Utf8View(m.key, &scratch)), "\""));
      }
      seen[f->index] = true;
      if (m.value.kind == Kind::kNull && !f->null_is_value) continue;  // null leaves it unset
      const size_t start = out.size();
      if (f->map) {
        BARRAGE_RETURN_IF_ERROR(EncodeMap(*f, m.value, out));
      } else if (f->repeated) {
        if (m.value.kind != Kind::kArray) {
          std::string scratch;
          return absl::InvalidArgumentError(absl::StrCat("invalid value for repeated field \"",
                                                         Av(Utf8View(m.key, &scratch)),
                                                         "\": expected an array, got ", KindName(m.value.kind)));
        }
        BARRAGE_RETURN_IF_ERROR(EncodeRepeated(*f, m.key, m.value, out));
      } else {
        if (f->oneof >= 0) {
          if (seen_oneof[f->oneof]) {
            std::string scratch;
            return absl::InvalidArgumentError(absl::StrCat("error parsing \"", Av(Utf8View(m.key, &scratch)),
                                                           "\", oneof ", plan.oneof_names[f->oneof],
                                                           " is already set"));
          }
          seen_oneof[f->oneof] = true;
        }
        BARRAGE_RETURN_IF_ERROR(EncodeSingular(*f, m.value, out));
      }
      if (out.size() > start) segments_.push_back(Segment{f->number, start});
    }
    SortSegments(seg_begin, out);
    segments_.resize(seg_begin);
    return absl::OkStatus();
  }

  // Members come in the script's order; the wire wants field numbers
  // ascending. Usually they already are.
  void SortSegments(size_t seg_begin, WireBuffer& out) {
    const size_t n = segments_.size() - seg_begin;
    if (n < 2) return;
    bool sorted = true;
    for (size_t i = seg_begin + 1; i < segments_.size(); ++i) {
      if (segments_[i].number < segments_[i - 1].number) {
        sorted = false;
        break;
      }
    }
    if (sorted) return;
    const size_t base = segments_[seg_begin].start;
    const std::string copy(out.data() + base, out.size() - base);
    std::vector<std::pair<int, std::string_view>> parts;
    parts.reserve(n);
    for (size_t i = seg_begin; i < segments_.size(); ++i) {
      const size_t s = segments_[i].start - base;
      const size_t e = (i + 1 < segments_.size() ? segments_[i + 1].start : out.size()) - base;
      parts.emplace_back(segments_[i].number, std::string_view(copy).substr(s, e - s));
    }
    std::stable_sort(parts.begin(), parts.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    out.Truncate(base);
    for (const auto& [number, bytes] : parts) out.Append(bytes.data(), bytes.size());
  }

  // A message-typed field's value (singular, element or map value):
  // errors name the field, once, at the innermost user-visible level.
  absl::Status EncodeMessageValue(const FieldPlan& f, const Val& v, WireBuffer& out) {
    absl::Status st;
    if (f.type == FieldDescriptor::TYPE_GROUP) {
      out.Tag(WFL::MakeTag(f.number, WFL::WIRETYPE_START_GROUP));
      st = EncodeMessage(v, *f.message, out);
      out.Tag(WFL::MakeTag(f.number, WFL::WIRETYPE_END_GROUP));
    } else {
      out.Tag(f.tag);
      const size_t start = out.BeginLength();
      st = EncodeMessage(v, *f.message, out);
      if (st.ok() && !out.EndLength(start)) st = absl::InvalidArgumentError("message too large");
    }
    if (!st.ok() && f.names_errors && !stringify_failed_ && !absl::StrContains(st.message(), "field \"")) {
      return absl::Status(st.code(), absl::StrCat("field \"", f.json_name, "\": ", st.message()));
    }
    return st;
  }

  absl::Status EncodeSingular(const FieldPlan& f, const Val& v, WireBuffer& out) {
    if (f.message != nullptr) return EncodeMessageValue(f, v, out);
    Scalar s;
    BARRAGE_RETURN_IF_ERROR(ToScalar(f, v, s));
    if (f.implicit_presence && s.bits == 0 && s.bytes.empty()) return absl::OkStatus();
    out.Tag(f.tag);
    WriteScalar(f, s, out);
    return absl::OkStatus();
  }

  absl::Status EncodeRepeated(const FieldPlan& f, std::string_view key, const Val& array, WireBuffer& out) {
    BARRAGE_RETURN_IF_ERROR(Enter(array.idx));
    const duk_size_t n = duk_get_length(ctx_, array.idx);
    size_t packed_start = 0;
    if (f.packed && n > 0) {
      out.Tag(WFL::MakeTag(f.number, WFL::WIRETYPE_LENGTH_DELIMITED));
      packed_start = out.BeginLength();
    }
    for (duk_size_t i = 0; i < n; ++i) {
      duk_require_stack(ctx_, 8);
      duk_get_prop_index(ctx_, array.idx, static_cast<duk_uarridx_t>(i));
      Val item = Classify(duk_get_top_index(ctx_), -2 - static_cast<duk_idx_t>(i), array.in_json_result);
      if (item.kind == Kind::kAbsent) item.kind = Kind::kNull;  // JSON writes null in arrays
      if (item.kind == Kind::kNull && !f.null_is_value) {
        std::string scratch;
        return absl::InvalidArgumentError(
            absl::StrCat("null in repeated field \"", Av(Utf8View(key, &scratch)), "\""));
      }
      if (f.message != nullptr) {
        BARRAGE_RETURN_IF_ERROR(EncodeMessageValue(f, item, out));
      } else {
        Scalar s;
        BARRAGE_RETURN_IF_ERROR(ToScalar(f, item, s));
        if (!f.packed) out.Tag(f.tag);
        WriteScalar(f, s, out);
      }
      duk_pop(ctx_);
    }
    if (f.packed && n > 0 && !out.EndLength(packed_start)) return absl::InvalidArgumentError("message too large");
    Leave();
    return absl::OkStatus();
  }

  absl::Status EncodeMap(const FieldPlan& f, const Val& v, WireBuffer& out) {
    if (v.kind != Kind::kObject) {
      return absl::InvalidArgumentError(absl::StrCat("invalid value for map field \"", f.json_name,
                                                     "\": expected an object, got ", KindName(v.kind)));
    }
    BARRAGE_RETURN_IF_ERROR(Enter(v.idx));
    const size_t begin = CollectMembers(v.idx, v.in_json_result);
    absl::Status st = EncodeMapMembers(f, begin, out);
    members_.resize(begin);
    Leave();
    return st;
  }

  // Each member an entry (key 1, value 2), both always written, as
  // protobuf writes map entries.
  absl::Status EncodeMapMembers(const FieldPlan& f, size_t begin, WireBuffer& out) {
    const FieldPlan& key_field = f.message->fields[0];
    const FieldPlan& value_field = f.message->fields[1];
    const size_t end = members_.size();
    for (size_t i = begin; i < end; ++i) {
      const Member m = members_[i];
      out.Tag(f.tag);
      const size_t start = out.BeginLength();
      std::string scratch;
      const std::string_view key = Utf8View(m.key, &scratch);
      Scalar k;
      if (key_field.type == FieldDescriptor::TYPE_BOOL) {
        if (key != "true" && key != "false") {
          return absl::InvalidArgumentError(absl::StrCat("invalid map key \"", Av(key), "\" for bool"));
        }
        k.bits = key == "true";
      } else {
        Val kv;
        kv.kind = Kind::kString;
        kv.text = m.key;
        BARRAGE_RETURN_IF_ERROR(ToScalar(key_field, kv, k));
      }
      out.Tag(key_field.tag);
      WriteScalar(key_field, k, out);
      if (m.value.kind == Kind::kNull && !value_field.null_is_value) {
        return absl::InvalidArgumentError(
            absl::StrCat("null value for map key \"", Av(key), "\" in field \"", f.json_name, "\""));
      }
      if (value_field.message != nullptr) {
        BARRAGE_RETURN_IF_ERROR(EncodeMessageValue(value_field, m.value, out));
      } else {
        Scalar s;
        BARRAGE_RETURN_IF_ERROR(ToScalar(value_field, m.value, s));
        out.Tag(value_field.tag);
        WriteScalar(value_field, s, out);
      }
      if (!out.EndLength(start)) return absl::InvalidArgumentError("message too large");
    }
    return absl::OkStatus();
  }

  // A scalar field's value, converted: integers, enums and bools in bits
  // (signed ones sign-extended), floats as their bits, text in bytes.
  struct Scalar {
    uint64_t bits = 0;
    std::string_view bytes;
    std::string storage;
  };

  absl::Status BadValue(const FieldPlan& f, const Val& v, std::string_view why = "") {
    return absl::InvalidArgumentError(absl::StrCat("invalid value for ", FieldDescriptor::TypeName(f.type),
                                                   " field \"", f.json_name, "\": ", Shown(v),
                                                   why.empty() ? "" : " (", Av(why), why.empty() ? "" : ")"));
  }

  // The integer a number or numeric string stands for, as json_codec reads
  // the JSON text of it.
  absl::Status IntegerOf(const Val& v, bool* neg, uint64_t* mag) {
    if (v.kind == Kind::kNumber) {
      const double d = v.number;
      // Exact below 2^53; past it, JSON's text of the number ("1e+21",
      // "9007199254740992") is what the JSON path read.
      if (std::fabs(d) < 9007199254740992.0 && d == std::trunc(d)) {
        *neg = d < 0;
        *mag = static_cast<uint64_t>(std::fabs(d));
        return absl::OkStatus();
      }
      return gc::ParseJsonInteger(JsNumberText(d), neg, mag);
    }
    std::string scratch;
    return gc::ParseJsonInteger(Utf8View(v.text, &scratch), neg, mag);
  }

  absl::Status ToScalar(const FieldPlan& f, const Val& v, Scalar& s) {
    switch (f.descriptor->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        if (v.kind != Kind::kNumber && v.kind != Kind::kString) return BadValue(f, v);
        bool neg = false;
        uint64_t mag = 0;
        if (absl::Status st = IntegerOf(v, &neg, &mag); !st.ok()) {
          return BadValue(f, v, std::string_view(st.message().data(), st.message().size()));
        }
        switch (f.descriptor->cpp_type()) {
          case FieldDescriptor::CPPTYPE_INT32:
            if (mag > (neg ? 2147483648ull : 2147483647ull)) return BadValue(f, v, "out of range");
            s.bits = neg ? 0 - mag : mag;
            break;
          case FieldDescriptor::CPPTYPE_INT64:
            if (mag > (neg ? 9223372036854775808ull : 9223372036854775807ull)) return BadValue(f, v, "out of range");
            s.bits = neg ? 0 - mag : mag;
            break;
          case FieldDescriptor::CPPTYPE_UINT32:
            if ((neg && mag != 0) || mag > 4294967295ull) return BadValue(f, v, "out of range");
            s.bits = mag;
            break;
          default:
            if (neg && mag != 0) return BadValue(f, v, "out of range");
            s.bits = mag;
        }
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        double d;
        if (v.kind == Kind::kNumber) {
          d = v.number == 0 ? 0.0 : v.number;  // JSON writes -0 as 0
        } else if (v.kind == Kind::kString) {
          std::string scratch;
          const std::string_view text = Utf8View(v.text, &scratch);
          if (text == "NaN") {
            d = std::nan("");
          } else if (text == "Infinity") {
            d = HUGE_VAL;
          } else if (text == "-Infinity") {
            d = -HUGE_VAL;
          } else if (gc::IsJsonNumber(text)) {
            d = std::strtod(std::string(text).c_str(), nullptr);
            if (std::isinf(d)) return BadValue(f, v, "out of range");
          } else {
            return BadValue(f, v);
          }
        } else {
          return BadValue(f, v);
        }
        if (f.descriptor->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
          if (std::isfinite(d) && std::fabs(d) > FLT_MAX) return BadValue(f, v, "out of range");
          s.bits = BitCast<uint32_t>(static_cast<float>(d));
        } else {
          s.bits = BitCast<uint64_t>(d);
        }
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        if (v.kind != Kind::kBool) return BadValue(f, v);
        s.bits = v.boolean ? 1 : 0;
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_STRING: {
        if (v.kind != Kind::kString) return BadValue(f, v);
        const std::string_view text = Utf8View(v.text, &s.storage);
        if (f.type != FieldDescriptor::TYPE_BYTES) {
          s.bytes = text;
          return absl::OkStatus();
        }
        // Go picks the URL alphabet when '-' or '_' appear; padding is optional.
        std::string decoded;
        const bool ok = text.find_first_of("-_") != std::string_view::npos
                            ? absl::WebSafeBase64Unescape(Av(text), &decoded)
                            : absl::Base64Unescape(Av(text), &decoded);
        if (!ok) return BadValue(f, v, "invalid base64");
        s.storage = std::move(decoded);
        s.bytes = s.storage;
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        if (v.kind == Kind::kNull && f.enumeration->null_value) {
          s.bits = 0;
        } else if (v.kind == Kind::kString) {
          std::string scratch;
          const std::string_view name = Utf8View(v.text, &scratch);
          auto it = f.enumeration->by_name.find(Av(name));
          if (it == f.enumeration->by_name.end()) {
            return BadValue(f, v, absl::StrCat("no such value in enum ", f.enumeration->descriptor->full_name()));
          }
          s.bits = static_cast<uint64_t>(static_cast<int64_t>(it->second));
        } else if (v.kind == Kind::kNumber) {
          bool neg = false;
          uint64_t mag = 0;
          if (!IntegerOf(v, &neg, &mag).ok() || mag > (neg ? 2147483648ull : 2147483647ull)) return BadValue(f, v);
          s.bits = neg ? 0 - mag : mag;
        } else {
          return BadValue(f, v);
        }
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_MESSAGE: break;
    }
    return absl::InternalError("unhandled field type");
  }

  static void WriteScalar(const FieldPlan& f, const Scalar& s, WireBuffer& out) {
    switch (f.type) {
      case FieldDescriptor::TYPE_INT32:
      case FieldDescriptor::TYPE_ENUM:
        out.Varint(static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(s.bits))));
        break;
      case FieldDescriptor::TYPE_INT64:
      case FieldDescriptor::TYPE_UINT64:
      case FieldDescriptor::TYPE_BOOL: out.Varint(s.bits); break;
      case FieldDescriptor::TYPE_UINT32: out.Varint(static_cast<uint32_t>(s.bits)); break;
      case FieldDescriptor::TYPE_SINT32: out.Varint(WFL::ZigZagEncode32(static_cast<int32_t>(s.bits))); break;
      case FieldDescriptor::TYPE_SINT64: out.Varint(WFL::ZigZagEncode64(static_cast<int64_t>(s.bits))); break;
      case FieldDescriptor::TYPE_FIXED32:
      case FieldDescriptor::TYPE_SFIXED32:
      case FieldDescriptor::TYPE_FLOAT: out.Fixed32(static_cast<uint32_t>(s.bits)); break;
      case FieldDescriptor::TYPE_FIXED64:
      case FieldDescriptor::TYPE_SFIXED64:
      case FieldDescriptor::TYPE_DOUBLE: out.Fixed64(s.bits); break;
      case FieldDescriptor::TYPE_STRING:
      case FieldDescriptor::TYPE_BYTES: out.Bytes(s.bytes); break;
      case FieldDescriptor::TYPE_MESSAGE:
      case FieldDescriptor::TYPE_GROUP: break;
    }
  }

  // ---- well-known types ------------------------------------------------------

  absl::Status EncodeWellKnown(const Val& v, const MessagePlan& plan, WireBuffer& out) {
    auto bad = [&](std::string_view why) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid ", plan.descriptor->full_name(), " value ", Shown(v), ": ", Av(why)));
    };
    auto field = [&plan](int number) -> const FieldPlan& { return *plan.FieldByNumber(number); };
    switch (plan.well_known) {
      case WellKnownType::kNone: break;
      case WellKnownType::kWrapper:
        if (v.kind == Kind::kNull) return bad("expected a value");
        return EncodeSingular(field(1), v, out);
      case WellKnownType::kEmpty: {
        if (v.kind != Kind::kObject) return bad("expected an object");
        BARRAGE_RETURN_IF_ERROR(Enter(v.idx));
        const size_t begin = CollectMembers(v.idx, v.in_json_result);
        absl::Status st;
        if (members_.size() > begin) {
          std::string scratch;
          st = absl::InvalidArgumentError(absl::StrCat(
              "unknown field \"", Av(Utf8View(members_[begin].key, &scratch)), "\" in google.protobuf.Empty"));
        }
        members_.resize(begin);
        Leave();
        return st;
      }
      case WellKnownType::kAny: {
        if (v.kind != Kind::kObject) return bad("expected an object");
        BARRAGE_RETURN_IF_ERROR(Enter(v.idx));
        const size_t begin = CollectMembers(v.idx, v.in_json_result);
        absl::Status st = EncodeAny(plan, begin, out);
        members_.resize(begin);
        Leave();
        return st;
      }
      case WellKnownType::kTimestamp: {
        if (v.kind != Kind::kString) return bad("expected an RFC 3339 string");
        int64_t seconds;
        int32_t nanos;
        std::string why, scratch;
        if (!gc::ParseTimestamp(Utf8View(v.text, &scratch), &seconds, &nanos, &why)) return bad(why);
        WriteSecondsNanos(seconds, nanos, out);
        return absl::OkStatus();
      }
      case WellKnownType::kDuration: {
        int64_t seconds;
        int32_t nanos;
        std::string why = "expected a string like \"1.5s\"", scratch;
        if (v.kind != Kind::kString || !gc::ParseDuration(Utf8View(v.text, &scratch), &seconds, &nanos, &why)) {
          return bad(why);
        }
        WriteSecondsNanos(seconds, nanos, out);
        return absl::OkStatus();
      }
      case WellKnownType::kStruct: {
        if (v.kind != Kind::kObject) return bad("expected an object");
        return EncodeMap(field(1), v, out);
      }
      case WellKnownType::kListValue: {
        if (v.kind != Kind::kArray) return bad("expected an array");
        const FieldPlan& values = field(1);
        BARRAGE_RETURN_IF_ERROR(Enter(v.idx));
        const duk_size_t n = duk_get_length(ctx_, v.idx);
        for (duk_size_t i = 0; i < n; ++i) {
          duk_require_stack(ctx_, 8);
          duk_get_prop_index(ctx_, v.idx, static_cast<duk_uarridx_t>(i));
          Val item = Classify(duk_get_top_index(ctx_), -2 - static_cast<duk_idx_t>(i), v.in_json_result);
          if (item.kind == Kind::kAbsent) item.kind = Kind::kNull;
          BARRAGE_RETURN_IF_ERROR(EncodeMessageValue(values, item, out));
          duk_pop(ctx_);
        }
        Leave();
        return absl::OkStatus();
      }
      case WellKnownType::kValue:
        switch (v.kind) {
          case Kind::kAbsent:
          case Kind::kNull:
            out.Tag(field(1).tag);
            out.Varint(0);
            return absl::OkStatus();
          case Kind::kNumber:
          case Kind::kBool:
          case Kind::kString: {
            // kind is a oneof: its member is sent even when it is the default.
            const FieldPlan& f = field(v.kind == Kind::kNumber ? 2 : v.kind == Kind::kString ? 3 : 4);
            Scalar s;
            if (v.kind == Kind::kString) {
              s.bytes = Utf8View(v.text, &s.storage);  // any text: no number parsing here
            } else {
              BARRAGE_RETURN_IF_ERROR(ToScalar(f, v, s));
            }
            out.Tag(f.tag);
            WriteScalar(f, s, out);
            return absl::OkStatus();
          }
          case Kind::kObject: return EncodeMessageValue(field(5), v, out);
          case Kind::kArray: return EncodeMessageValue(field(6), v, out);
        }
        break;
      case WellKnownType::kFieldMask: {
        if (v.kind != Kind::kString) return bad("expected a string");
        std::string scratch;
        const std::string_view text = Utf8View(v.text, &scratch);
        if (text.empty()) return absl::OkStatus();
        const FieldPlan& paths = field(1);
        std::string snake;
        for (absl::string_view path : absl::StrSplit(Av(text), ',')) {
          if (!gc::FieldMaskPathFromJson(std::string_view(path.data(), path.size()), &snake)) {
            return bad("paths must be lowerCamelCase");
          }
          out.Tag(paths.tag);
          out.Bytes(snake);
        }
        return absl::OkStatus();
      }
    }
    return absl::InternalError("unhandled well-known type");
  }

  static void WriteSecondsNanos(int64_t seconds, int32_t nanos, WireBuffer& out) {
    if (seconds != 0) {
      out.Tag(WFL::MakeTag(1, WFL::WIRETYPE_VARINT));
      out.Varint(static_cast<uint64_t>(seconds));
    }
    if (nanos != 0) {
      out.Tag(WFL::MakeTag(2, WFL::WIRETYPE_VARINT));
      out.Varint(static_cast<uint64_t>(static_cast<int64_t>(nanos)));
    }
  }

  // {"@type": url, …fields} or, for a well-known type, {"@type": url, "value": …}.
  absl::Status EncodeAny(const MessagePlan& plan, size_t begin, WireBuffer& out) {
    const size_t end = members_.size();
    if (end == begin) return absl::OkStatus();
    const Member* type = nullptr;
    for (size_t i = begin; i < end; ++i) {
      if (members_[i].key == "@type") {
        type = &members_[i];
        break;
      }
    }
    if (type == nullptr) return absl::InvalidArgumentError("missing \"@type\" field in google.protobuf.Any");
    if (type->value.kind != Kind::kString) {
      return absl::InvalidArgumentError("invalid \"@type\" field in google.protobuf.Any");
    }
    std::string url_storage;
    const std::string url(Utf8View(type->value.text, &url_storage));
    const pb::Descriptor* inner_type = registry_.FindMessageType(std::string_view(url).substr(url.rfind('/') + 1));
    if (inner_type == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("unable to resolve \"", url, "\": not found"));
    }
    const MessagePlan& inner = registry_.Plan(inner_type);
    // The inner message goes at the end of out, then moves into place.
    const size_t base = out.size();
    if (inner.well_known != WellKnownType::kNone) {
      const Member* value = nullptr;
      for (size_t i = begin; i < end; ++i) {
        if (members_[i].key == "value") {
          value = &members_[i];
          break;
        }
      }
      if (value == nullptr) {
        return absl::InvalidArgumentError(
            absl::StrCat("missing \"value\" field in Any of ", inner_type->full_name()));
      }
      for (size_t i = begin; i < end; ++i) {
        if (members_[i].key != "@type" && members_[i].key != "value") {
          std::string scratch;
          return absl::InvalidArgumentError(
              absl::StrCat("unknown field \"", Av(Utf8View(members_[i].key, &scratch)), "\" in Any"));
        }
      }
      const Val inner_value = value->value;
      BARRAGE_RETURN_IF_ERROR(EncodeWellKnown(inner_value, inner, out));
    } else {
      BARRAGE_RETURN_IF_ERROR(EncodeFields(begin, inner, out, /*skip_type=*/true));
    }
    const std::string value_bytes(out.data() + base, out.size() - base);
    out.Truncate(base);
    const FieldPlan& url_field = *plan.FieldByNumber(1);
    const FieldPlan& value_field = *plan.FieldByNumber(2);
    out.Tag(url_field.tag);
    out.Bytes(url);
    if (!value_bytes.empty()) {
      out.Tag(value_field.tag);
      out.Bytes(value_bytes);
    }
    return absl::OkStatus();
  }

  duk_context* ctx_;
  const gc::ProtoRegistry& registry_;
  const NonFinite non_finite_;
  bool stringify_failed_ = false;
  absl::InlinedVector<Member, 16> members_;
  absl::InlinedVector<Segment, 16> segments_;
  absl::InlinedVector<void*, 8> visiting_;
};

// ---------------------------------------------------------------------------
// Decoder: wire bytes -> JS values, in two passes. The scan reads the bytes
// once, as protobuf's parser would (last value wins, repeated occurrences of
// a message merge, oneof members replace each other, packed and unpacked
// both accepted, unknown fields skipped, the same failures), into slots per
// message; the push walks the slots in declaration order. Two passes because
// a response is printed in declaration order with defaults, and the bytes
// can come in any order.

class Decoder {
 public:
  Decoder(duk_context* ctx, const gc::ProtoRegistry& registry)
      : ctx_(ctx), registry_(registry), scratch_(Borrow()), nodes_(scratch_->nodes), slots_(scratch_->slots),
        items_(scratch_->items), oneofs_(scratch_->oneofs) {}
  ~Decoder() {
    nodes_.clear();
    slots_.clear();
    items_.clear();
    oneofs_.clear();
    if (scratch_ == &ThreadScratch()) {
      // A huge response should not pin its memory to the thread.
      if (slots_.capacity() > 65536 || items_.capacity() > 65536) ThreadScratch() = Scratch();
      ThreadScratch().busy = false;
    } else {
      delete scratch_;
    }
  }
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  // Scans bytes as a message of plan: false when protobuf would not parse them.
  bool Scan(const MessagePlan& plan, std::string_view bytes) {
    CodedInputStream in(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
    in.SetRecursionLimit(CodedInputStream::GetDefaultRecursionLimit());
    base_ = bytes.data();
    (void)in.PushLimit(static_cast<int>(bytes.size()));
    NewNode(plan);
    return ScanFields(in, 0, 0);
  }

  // Pushes the scanned message.
  absl::Status Push() { return PushNode(0); }

 private:
  // One value (or the latest) of a field.
  struct Slot {
    uint64_t bits = 0;       // integers sign-extended, floats as bits, enum numbers
    const char* data = nullptr;  // string and bytes
    uint32_t size = 0;
    int32_t node = -1;       // a message
    int32_t head = -1;       // repeated: the first item
    int32_t tail = -1;
    uint32_t count = 0;      // repeated: how many items
    bool has = false;
  };
  // An element of a repeated field, in wire order.
  struct Item {
    uint64_t bits;
    const char* data;
    uint32_t size;
    int32_t node;
    int32_t next;
  };
  struct Node {
    const MessagePlan* plan;
    uint32_t first_slot;
    uint32_t first_oneof;
  };

  int32_t NewNode(const MessagePlan& plan) {
    nodes_.push_back(Node{&plan, static_cast<uint32_t>(slots_.size()), static_cast<uint32_t>(oneofs_.size())});
    slots_.resize(slots_.size() + plan.fields.size());
    oneofs_.resize(oneofs_.size() + plan.oneof_names.size(), -1);
    return static_cast<int32_t>(nodes_.size() - 1);
  }

  Slot& SlotOf(int32_t node, int index) { return slots_[nodes_[node].first_slot + index]; }

  // protobuf reads tags and lengths of at most 5 bytes (a longer varint
  // with redundant bytes fails its parse); CodedInputStream takes up to 10.
  static bool ReadTag(CodedInputStream& in, uint32_t* tag) {
    const int before = in.CurrentPosition();
    *tag = in.ReadTagNoLastTag();
    return *tag != 0 && in.CurrentPosition() - before <= 5;
  }
  static bool ReadSize(CodedInputStream& in, int* size) {
    const int before = in.CurrentPosition();
    uint32_t v;
    if (!in.ReadVarint32(&v) || in.CurrentPosition() - before > 5 || v > static_cast<uint32_t>(INT32_MAX - 16)) {
      return false;
    }
    *size = static_cast<int>(v);
    return true;
  }

  // Reads fields into node until the limit (end_tag 0) or until end_tag
  // (a group's end).
  bool ScanFields(CodedInputStream& in, int32_t node, uint32_t end_tag) {
    const MessagePlan& plan = *nodes_[node].plan;
    while (true) {
      if (in.BytesUntilLimit() == 0) return end_tag == 0;
      uint32_t tag;
      if (!ReadTag(in, &tag)) return false;
      const int wire_type = WFL::GetTagWireType(tag);
      if (wire_type == WFL::WIRETYPE_END_GROUP) return tag == end_tag;
      const int number = WFL::GetTagFieldNumber(tag);
      if (number == 0) return false;
      const FieldPlan* f = plan.FieldByNumber(number);
      if (f == nullptr) {
        if (!SkipUnknown(in, tag)) return false;
        continue;
      }
      if (wire_type != f->wire_type) {
        if (f->packable && wire_type == WFL::WIRETYPE_LENGTH_DELIMITED) {
          if (!ScanPacked(in, node, *f)) return false;
        } else if (!SkipUnknown(in, tag)) {  // a mismatched wire type is an unknown field
          return false;
        }
        continue;
      }
      if (!ScanValue(in, node, *f)) return false;
    }
  }

  // Skips an unknown field, checking it as protobuf does.
  static bool SkipUnknown(CodedInputStream& in, uint32_t tag) {
    switch (WFL::GetTagWireType(tag)) {
      case WFL::WIRETYPE_VARINT: {
        uint64_t v;
        return in.ReadVarint64(&v);
      }
      case WFL::WIRETYPE_FIXED64: return in.Skip(8);
      case WFL::WIRETYPE_FIXED32: return in.Skip(4);
      case WFL::WIRETYPE_LENGTH_DELIMITED: {
        int size;
        return ReadSize(in, &size) && in.Skip(size);
      }
      case WFL::WIRETYPE_START_GROUP: {
        if (!in.IncrementRecursionDepth()) return false;
        const uint32_t end = WFL::MakeTag(WFL::GetTagFieldNumber(tag), WFL::WIRETYPE_END_GROUP);
        while (true) {
          if (in.BytesUntilLimit() == 0) return false;
          uint32_t inner;
          if (!ReadTag(in, &inner)) return false;
          if (WFL::GetTagWireType(inner) == WFL::WIRETYPE_END_GROUP) {
            if (inner != end) return false;
            break;
          }
          if (WFL::GetTagFieldNumber(inner) == 0 || !SkipUnknown(in, inner)) return false;
        }
        in.DecrementRecursionDepth();
        return true;
      }
      default: return false;  // END_GROUP outside a group, or wire types 6 and 7
    }
  }

  // A oneof member is being set: the member set before is cleared.
  void SetOneof(int32_t node, const FieldPlan& f) {
    if (f.oneof < 0) return;
    int32_t& current = oneofs_[nodes_[node].first_oneof + f.oneof];
    if (current >= 0 && current != f.index) SlotOf(node, current) = Slot();
    current = f.index;
  }

  void AddItem(int32_t node, int index, uint64_t bits, const char* data, uint32_t size, int32_t child) {
    items_.push_back(Item{bits, data, size, child, -1});
    const auto at = static_cast<int32_t>(items_.size() - 1);
    Slot& s = SlotOf(node, index);
    if (s.tail >= 0) {
      items_[s.tail].next = at;
    } else {
      s.head = at;
    }
    s.tail = at;
    ++s.count;
    s.has = true;
  }

  // A scalar as the codec keeps it; false when the bytes end early.
  static bool ReadScalar(CodedInputStream& in, const FieldPlan& f, uint64_t* bits) {
    switch (f.type) {
      case FieldDescriptor::TYPE_INT32:
      case FieldDescriptor::TYPE_ENUM: {
        uint64_t v;
        if (!in.ReadVarint64(&v)) return false;
        *bits = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v)));
        return true;
      }
      case FieldDescriptor::TYPE_UINT32: {
        uint64_t v;
        if (!in.ReadVarint64(&v)) return false;
        *bits = static_cast<uint32_t>(v);
        return true;
      }
      case FieldDescriptor::TYPE_SINT32: {
        uint64_t v;
        if (!in.ReadVarint64(&v)) return false;
        *bits = static_cast<uint64_t>(static_cast<int64_t>(WFL::ZigZagDecode32(static_cast<uint32_t>(v))));
        return true;
      }
      case FieldDescriptor::TYPE_SINT64: {
        uint64_t v;
        if (!in.ReadVarint64(&v)) return false;
        *bits = static_cast<uint64_t>(WFL::ZigZagDecode64(v));
        return true;
      }
      case FieldDescriptor::TYPE_INT64:
      case FieldDescriptor::TYPE_UINT64: return in.ReadVarint64(bits);
      case FieldDescriptor::TYPE_BOOL: {
        uint64_t v;
        if (!in.ReadVarint64(&v)) return false;
        *bits = v != 0;
        return true;
      }
      case FieldDescriptor::TYPE_FIXED32:
      case FieldDescriptor::TYPE_FLOAT: {
        uint32_t v;
        if (!in.ReadLittleEndian32(&v)) return false;
        *bits = v;
        return true;
      }
      case FieldDescriptor::TYPE_SFIXED32: {
        uint32_t v;
        if (!in.ReadLittleEndian32(&v)) return false;
        *bits = static_cast<uint64_t>(static_cast<int64_t>(static_cast<int32_t>(v)));
        return true;
      }
      case FieldDescriptor::TYPE_FIXED64:
      case FieldDescriptor::TYPE_SFIXED64:
      case FieldDescriptor::TYPE_DOUBLE: return in.ReadLittleEndian64(bits);
      default: return false;
    }
  }

  // protobuf keeps a proto2 enum's unknown numbers as unknown fields.
  static bool DropsEnumValue(const FieldPlan& f, uint64_t bits) {
    return f.closed_enum && f.enumeration->NameOf(static_cast<int32_t>(bits)) == nullptr;
  }

  bool ScanPacked(CodedInputStream& in, int32_t node, const FieldPlan& f) {
    int size;
    if (!ReadSize(in, &size) || size > in.BytesUntilLimit()) return false;
    const CodedInputStream::Limit limit = in.PushLimit(size);
    if (f.wire_type == WFL::WIRETYPE_FIXED32 || f.wire_type == WFL::WIRETYPE_FIXED64) {
      // protobuf refuses a packed run that is not a whole number of values.
      const int width = f.wire_type == WFL::WIRETYPE_FIXED32 ? 4 : 8;
      if (size % width != 0) return false;
    }
    while (in.BytesUntilLimit() > 0) {
      uint64_t bits;
      if (!ReadScalar(in, f, &bits)) return false;
      if (!DropsEnumValue(f, bits)) AddItem(node, f.index, bits, nullptr, 0, -1);
    }
    in.PopLimit(limit);
    return true;
  }

  bool ScanMessage(CodedInputStream& in, int32_t node, const FieldPlan& f) {
    int32_t child = -1;
    if (!f.repeated) {
      SetOneof(node, f);
      child = SlotOf(node, f.index).node;  // a second occurrence merges into the first
    }
    if (child < 0) child = NewNode(*f.message);
    if (f.repeated) {
      AddItem(node, f.index, 0, nullptr, 0, child);
    } else {
      Slot& s = SlotOf(node, f.index);
      s.node = child;
      s.has = true;
    }
    if (f.type == FieldDescriptor::TYPE_GROUP) {
      if (!in.IncrementRecursionDepth()) return false;
      if (!ScanFields(in, child, WFL::MakeTag(f.number, WFL::WIRETYPE_END_GROUP))) return false;
      in.DecrementRecursionDepth();
      return true;
    }
    int size;
    if (!ReadSize(in, &size) || size > in.BytesUntilLimit()) return false;
    const CodedInputStream::Limit limit = in.PushLimit(size);
    if (!in.IncrementRecursionDepth()) return false;
    if (!ScanFields(in, child, 0)) return false;
    in.DecrementRecursionDepth();
    in.PopLimit(limit);
    return true;
  }

  bool ScanValue(CodedInputStream& in, int32_t node, const FieldPlan& f) {
    if (f.message != nullptr) return ScanMessage(in, node, f);
    if (f.type == FieldDescriptor::TYPE_STRING || f.type == FieldDescriptor::TYPE_BYTES) {
      int size;
      if (!ReadSize(in, &size)) return false;
      const char* data = base_ + in.CurrentPosition();
      if (!in.Skip(size)) return false;
      if (f.strict_utf8 && !pb::internal::IsStructurallyValidUTF8(data, size)) return false;
      if (f.repeated) {
        AddItem(node, f.index, 0, data, static_cast<uint32_t>(size), -1);
      } else {
        SetOneof(node, f);
        Slot& s = SlotOf(node, f.index);
        s.data = data;
        s.size = static_cast<uint32_t>(size);
        s.has = true;
      }
      return true;
    }
    uint64_t bits;
    if (!ReadScalar(in, f, &bits)) return false;
    if (DropsEnumValue(f, bits)) return true;
    if (f.repeated) {
      AddItem(node, f.index, bits, nullptr, 0, -1);
    } else {
      SetOneof(node, f);
      Slot& s = SlotOf(node, f.index);
      s.bits = bits;
      s.has = true;
    }
    return true;
  }

  // ---- the push --------------------------------------------------------------

  absl::Status PushNode(int32_t node) {
    duk_require_stack(ctx_, 8);
    const MessagePlan& plan = *nodes_[node].plan;
    if (plan.well_known != WellKnownType::kNone) return PushWellKnown(node);
    PushObjectWithRoom(ctx_, static_cast<duk_uint_t>(plan.fields.size()));
    return PushFields(node, duk_get_top_index(ctx_));
  }

  // The fields of node into the object at obj, in declaration order.
  absl::Status PushFields(int32_t node, duk_idx_t obj) {
    const MessagePlan& plan = *nodes_[node].plan;
    if (barrage_duk_native_stack_check(0) != 0) return absl::InvalidArgumentError("nested too deeply");
    duk_require_stack(ctx_, 8);
    for (const FieldPlan& f : plan.fields) {
      const Slot s = SlotOf(node, f.index);
      if (f.map) {
        BARRAGE_RETURN_IF_ERROR(PushMap(f, s));
      } else if (f.repeated) {
        BARRAGE_RETURN_IF_ERROR(PushList(f, s));
      } else if (!s.has) {
        if (f.oneof >= 0) continue;  // proto3 optional and oneof members: absent
        if (f.null_when_unset) {
          duk_push_null(ctx_);
        } else {
          BARRAGE_RETURN_IF_ERROR(PushDefault(f));
        }
      } else {
        BARRAGE_RETURN_IF_ERROR(PushValue(f, s.bits, s.data, s.size, s.node));
      }
      PutKey(ctx_, obj, f.json_name);
    }
    return absl::OkStatus();
  }

  // What an unset field reads as when it is printed anyway.
  absl::Status PushDefault(const FieldPlan& f) {
    if (f.message != nullptr) return PushNode(NewNode(*f.message));
    return PushValue(f, f.default_bits, f.default_string.data(), static_cast<uint32_t>(f.default_string.size()), -1);
  }

  absl::Status PushValue(const FieldPlan& f, uint64_t bits, const char* data, uint32_t size, int32_t node) {
    switch (f.type) {
      case FieldDescriptor::TYPE_INT32:
      case FieldDescriptor::TYPE_SINT32:
      case FieldDescriptor::TYPE_SFIXED32:
        duk_push_int(ctx_, static_cast<duk_int_t>(static_cast<int32_t>(bits)));
        break;
      case FieldDescriptor::TYPE_UINT32:
      case FieldDescriptor::TYPE_FIXED32: duk_push_uint(ctx_, static_cast<duk_uint_t>(bits)); break;
      case FieldDescriptor::TYPE_INT64:
      case FieldDescriptor::TYPE_SINT64:
      case FieldDescriptor::TYPE_SFIXED64: {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(bits));
        duk_push_lstring(ctx_, buf, r.ptr - buf);
        break;
      }
      case FieldDescriptor::TYPE_UINT64:
      case FieldDescriptor::TYPE_FIXED64: {
        char buf[24];
        auto r = std::to_chars(buf, buf + sizeof(buf), bits);
        duk_push_lstring(ctx_, buf, r.ptr - buf);
        break;
      }
      case FieldDescriptor::TYPE_FLOAT: PushFloat(BitCast<float>(static_cast<uint32_t>(bits))); break;
      case FieldDescriptor::TYPE_DOUBLE: PushDouble(BitCast<double>(bits)); break;
      case FieldDescriptor::TYPE_BOOL: duk_push_boolean(ctx_, bits != 0); break;
      case FieldDescriptor::TYPE_STRING: PushText(ctx_, std::string_view(data, size)); break;
      case FieldDescriptor::TYPE_BYTES: {
        const std::string b64 = absl::Base64Escape(absl::string_view(data, size));
        duk_push_lstring(ctx_, b64.data(), b64.size());
        break;
      }
      case FieldDescriptor::TYPE_ENUM: {
        if (f.enumeration->null_value) {
          duk_push_null(ctx_);
          break;
        }
        const int32_t number = static_cast<int32_t>(bits);
        if (const std::string* name = f.enumeration->NameOf(number)) {
          duk_push_lstring(ctx_, name->data(), name->size());
        } else {
          duk_push_int(ctx_, number);
        }
        break;
      }
      case FieldDescriptor::TYPE_MESSAGE:
      case FieldDescriptor::TYPE_GROUP:
        return node >= 0 ? PushNode(node) : PushNode(NewNode(*f.message));
    }
    return absl::OkStatus();
  }

  void PushDouble(double d) {
    if (std::isnan(d)) {
      duk_push_literal(ctx_, "NaN");
    } else if (std::isinf(d)) {
      if (d > 0) {
        duk_push_literal(ctx_, "Infinity");
      } else {
        duk_push_literal(ctx_, "-Infinity");
      }
    } else {
      duk_push_number(ctx_, d);
    }
  }

  // A float reads as the double its shortest text denotes ("0.1", not
  // 0.10000000149011612), as JSON.parse of the JSON path's text gave.
  // Duktape's parser breaks an exact tie between two doubles upwards where
  // std::from_chars rounds to even; a float's text (at most 9 digits) can
  // only be such a tie from 1e11 on, so only there Duktape parses it.
  void PushFloat(float v) {
    if (!std::isfinite(v)) {
      PushDouble(v);
      return;
    }
    if (v == std::trunc(v) && std::fabs(v) < 16777216.0f) {
      duk_push_number(ctx_, v);
      return;
    }
    std::string text;
    gc::AppendJsonFloat(v, &text);
    if (std::fabs(v) < 1e11f) {
      double d = 0;
      std::from_chars(text.data(), text.data() + text.size(), d);
      duk_push_number(ctx_, d);
      return;
    }
    duk_push_lstring(ctx_, text.data(), text.size());
    duk_to_number(ctx_, -1);
  }

  absl::Status PushList(const FieldPlan& f, Slot s) {
    PushArrayWithRoom(ctx_, s.count);
    const duk_idx_t arr = duk_get_top_index(ctx_);
    duk_uarridx_t i = 0;
    for (int32_t at = s.head; at >= 0; at = items_[at].next) {
      const Item item = items_[at];
      BARRAGE_RETURN_IF_ERROR(PushValue(f, item.bits, item.data, item.size, item.node));
      DefineOwnIndex(ctx_, arr, i++);
    }
    duk_set_length(ctx_, arr, i);
    return absl::OkStatus();
  }

  // A map: entries by key (numbers by value, strings by bytes, false first,
  // as Go sorts them); of duplicate keys the last on the wire wins.
  absl::Status PushMap(const FieldPlan& f, Slot s) {
    const FieldPlan& key_field = f.message->fields[0];
    const FieldPlan& value_field = f.message->fields[1];
    struct Entry {
      int32_t node;
      uint64_t bits;
      std::string_view text;
    };
    std::vector<Entry> entries;
    for (int32_t at = s.head; at >= 0; at = items_[at].next) {
      const int32_t entry = items_[at].node;
      const Slot& k = SlotOf(entry, key_field.index);
      Entry e{entry, k.has ? k.bits : key_field.default_bits, {}};
      if (key_field.type == FieldDescriptor::TYPE_STRING) {
        e.text = k.has ? std::string_view(k.data, k.size) : std::string_view(key_field.default_string);
      }
      entries.push_back(e);
    }
    const bool is_signed = key_field.descriptor->cpp_type() == FieldDescriptor::CPPTYPE_INT32 ||
                           key_field.descriptor->cpp_type() == FieldDescriptor::CPPTYPE_INT64;
    const bool is_string = key_field.type == FieldDescriptor::TYPE_STRING;
    std::stable_sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
      if (is_string) return a.text < b.text;
      if (is_signed) return static_cast<int64_t>(a.bits) < static_cast<int64_t>(b.bits);
      return a.bits < b.bits;
    });
    PushObjectWithRoom(ctx_, static_cast<duk_uint_t>(entries.size()));
    const duk_idx_t obj = duk_get_top_index(ctx_);
    for (size_t i = 0; i < entries.size(); ++i) {
      const Entry& e = entries[i];
      if (i + 1 < entries.size() && (is_string ? entries[i + 1].text == e.text : entries[i + 1].bits == e.bits)) {
        continue;
      }
      const Slot v = SlotOf(e.node, value_field.index);
      if (v.has) {
        BARRAGE_RETURN_IF_ERROR(PushValue(value_field, v.bits, v.data, v.size, v.node));
      } else {
        BARRAGE_RETURN_IF_ERROR(PushDefault(value_field));
      }
      char buf[24];
      std::string key;
      std::string_view key_text;
      if (is_string) {
        key = HasFourByteSequences(e.text) ? Utf8ToJs(e.text) : std::string(e.text);
        key_text = key;
      } else if (key_field.type == FieldDescriptor::TYPE_BOOL) {
        key_text = e.bits != 0 ? "true" : "false";
      } else {
        auto r = is_signed ? std::to_chars(buf, buf + sizeof(buf), static_cast<int64_t>(e.bits))
                           : std::to_chars(buf, buf + sizeof(buf), e.bits);
        key_text = std::string_view(buf, r.ptr - buf);
      }
      PutKey(ctx_, obj, key_text);
    }
    return absl::OkStatus();
  }

  const Slot* FieldSlot(int32_t node, int number) {
    const FieldPlan* f = nodes_[node].plan->FieldByNumber(number);
    return f == nullptr ? nullptr : &SlotOf(node, f->index);
  }

  absl::Status PushWellKnown(int32_t node) {
    const MessagePlan& plan = *nodes_[node].plan;
    auto field = [&plan](int number) -> const FieldPlan& { return *plan.FieldByNumber(number); };
    auto integer = [&](int number) -> uint64_t {
      const Slot& s = SlotOf(node, field(number).index);
      return s.has ? s.bits : 0;
    };
    switch (plan.well_known) {
      case WellKnownType::kNone: break;
      case WellKnownType::kWrapper: {
        const FieldPlan& f = field(1);
        const Slot s = SlotOf(node, f.index);
        return s.has ? PushValue(f, s.bits, s.data, s.size, s.node) : PushDefault(f);
      }
      case WellKnownType::kTimestamp:
      case WellKnownType::kDuration: {
        const auto seconds = static_cast<int64_t>(integer(1));
        const auto nanos = static_cast<int32_t>(integer(2));
        std::string text;
        BARRAGE_RETURN_IF_ERROR(plan.well_known == WellKnownType::kTimestamp
                                    ? gc::FormatTimestamp(seconds, nanos, &text)
                                    : gc::FormatDuration(seconds, nanos, &text));
        duk_push_lstring(ctx_, text.data(), text.size());
        return absl::OkStatus();
      }
      case WellKnownType::kStruct: return PushMap(field(1), SlotOf(node, field(1).index));
      case WellKnownType::kListValue: return PushList(field(1), SlotOf(node, field(1).index));
      case WellKnownType::kValue: {
        const int32_t set = oneofs_[nodes_[node].first_oneof];
        // A Value with no kind is an error in Go; null is kinder to scripts.
        if (set < 0 || plan.fields[set].number == 1) {
          duk_push_null(ctx_);
          return absl::OkStatus();
        }
        const FieldPlan& f = plan.fields[set];
        const Slot s = SlotOf(node, f.index);
        return PushValue(f, s.bits, s.data, s.size, s.node);
      }
      case WellKnownType::kEmpty: duk_push_object(ctx_); return absl::OkStatus();
      case WellKnownType::kFieldMask: {
        std::string joined;
        bool first = true;
        for (int32_t at = SlotOf(node, field(1).index).head; at >= 0; at = items_[at].next) {
          if (!first) joined.push_back(',');
          first = false;
          joined.append(gc::FieldMaskPathToJson(std::string_view(items_[at].data, items_[at].size)));
        }
        PushText(ctx_, joined);
        return absl::OkStatus();
      }
      case WellKnownType::kAny: {
        const Slot url_slot = SlotOf(node, field(1).index);
        const Slot value_slot = SlotOf(node, field(2).index);
        const std::string_view url(url_slot.data, url_slot.has ? url_slot.size : 0);
        const std::string_view value(value_slot.data, value_slot.has ? value_slot.size : 0);
        return PushAny(url, value);
      }
    }
    return absl::InternalError("unhandled well-known type");
  }

  // {"@type": url, …}, the inner message parsed on its own as protobuf does.
  absl::Status PushAny(std::string_view url, std::string_view value) {
    if (url.empty() && value.empty()) {
      duk_push_object(ctx_);
      return absl::OkStatus();
    }
    const pb::Descriptor* type = registry_.FindMessageType(url.substr(url.rfind('/') + 1));
    if (type == nullptr) return absl::NotFoundError(absl::StrCat("unable to resolve \"", Av(url), "\": not found"));
    const MessagePlan& plan = registry_.Plan(type);
    Decoder inner(ctx_, registry_);
    if (!inner.Scan(plan, value)) {
      return absl::InvalidArgumentError(absl::StrCat("invalid bytes for ", type->full_name(), " in Any"));
    }
    PushObjectWithRoom(ctx_, static_cast<duk_uint_t>(plan.fields.size() + 1));
    const duk_idx_t obj = duk_get_top_index(ctx_);
    PushText(ctx_, url);
    PutKey(ctx_, obj, "@type");
    if (plan.well_known != WellKnownType::kNone) {
      BARRAGE_RETURN_IF_ERROR(inner.PushNode(0));
      PutKey(ctx_, obj, "value");
      return absl::OkStatus();
    }
    return inner.PushFields(0, obj);
  }

  // The vectors are kept per thread between decodes (a decode is never
  // suspended: no script runs in it), so a response costs no allocation of
  // its own; a decode within a decode (an Any) gets fresh ones.
  struct Scratch {
    std::vector<Node> nodes;
    std::vector<Slot> slots;
    std::vector<Item> items;
    std::vector<int32_t> oneofs;
    bool busy = false;
  };
  static Scratch& ThreadScratch() {
    static thread_local Scratch scratch;
    return scratch;
  }
  static Scratch* Borrow() {
    Scratch& t = ThreadScratch();
    if (t.busy) return new Scratch();
    t.busy = true;
    return &t;
  }

  duk_context* ctx_;
  const gc::ProtoRegistry& registry_;
  const char* base_ = nullptr;
  Scratch* scratch_;
  std::vector<Node>& nodes_;
  std::vector<Slot>& slots_;
  std::vector<Item>& items_;
  std::vector<int32_t>& oneofs_;
};

}  // namespace

std::string JsNumberText(double d) {
  if (std::isnan(d)) return "NaN";
  if (d == 0) return "0";
  if (std::isinf(d)) return d > 0 ? "Infinity" : "-Infinity";
  // The shortest digits that give d back, laid out as ECMAScript's
  // Number::toString lays them out (k digits, decimal exponent n).
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), std::fabs(d), std::chars_format::scientific);
  const std::string_view s(buf, r.ptr - buf);
  const size_t e = s.find('e');
  std::string digits(1, s[0]);
  if (e > 1) digits.append(s.substr(2, e - 2));
  int n = std::atoi(std::string(s.substr(e + 1)).c_str()) + 1;
  // When d lies exactly halfway between two shortest candidates,
  // std::to_chars takes the even one and Duktape's digit generation (Steele
  // and White's) the upper one; JSON.stringify's text is Duktape's. The
  // exact expansion (glibc prints every digit) shows a tie.
  {
    char exact[832];
    std::snprintf(exact, sizeof(exact), "%.800e", std::fabs(d));
    const std::string_view x(exact);
    const size_t xe = x.find('e');
    std::string all(1, x[0]);
    all.append(x.substr(2, xe - 2));
    const int xn = std::atoi(std::string(x.substr(xe + 1)).c_str()) + 1;
    const size_t k0 = digits.size();
    if (xn == n && all.size() > k0 && all.compare(0, k0, digits) == 0 && all[k0] == '5' &&
        all.find_first_not_of('0', k0 + 1) == std::string::npos) {
      size_t i = k0;
      while (i > 0 && digits[i - 1] == '9') digits[--i] = '0';
      if (i == 0) {
        digits.insert(digits.begin(), '1');
        ++n;
      } else {
        ++digits[i - 1];
      }
      while (digits.size() > 1 && digits.back() == '0') digits.pop_back();
    }
  }
  const int k = static_cast<int>(digits.size());
  std::string out = d < 0 ? "-" : "";
  if (k <= n && n <= 21) {
    out += digits;
    out.append(n - k, '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, n);
    out += '.';
    out += digits.substr(n);
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(-n, '0');
    out += digits;
  } else {
    out += digits[0];
    if (k > 1) {
      out += '.';
      out += digits.substr(1);
    }
    absl::StrAppend(&out, "e", n - 1 >= 0 ? "+" : "-", std::abs(n - 1));
  }
  return out;
}

absl::StatusOr<std::string> EncodeMessage(duk_context* ctx, duk_idx_t idx, const gc::ProtoRegistry& registry,
                                          const MessagePlan& plan, NonFinite non_finite) {
  idx = duk_normalize_index(ctx, idx);
  struct Call {
    duk_idx_t idx;
    const gc::ProtoRegistry& registry;
    const MessagePlan& plan;
    NonFinite non_finite;
    absl::Status status;
    WireBuffer out;
    bool stringify_failed = false;
  } call{idx, registry, plan, non_finite, absl::OkStatus(), WireBuffer()};
  // Under a protected call: a getter or toJSON may throw, and Duktape's
  // stack must be unwound to here (C++ exceptions run our destructors).
  auto run = [](duk_context* c, void* udata) -> duk_ret_t {
    auto* call = static_cast<Call*>(udata);
    Encoder encoder(c, call->registry, call->non_finite);
    call->status = encoder.EncodeTop(call->idx, call->plan, call->out);
    call->stringify_failed = encoder.stringify_failed();
    return 0;
  };
  const duk_idx_t top = duk_get_top(ctx);
  if (duk_safe_call(ctx, run, &call, 0, 1) != DUK_EXEC_SUCCESS) {
    std::string message = duk_safe_to_string(ctx, -1);
    duk_set_top(ctx, top);
    return absl::FailedPreconditionError(message);
  }
  duk_set_top(ctx, top);
  if (call.status.ok()) return std::move(call.out).Release();
  if (call.stringify_failed || !absl::IsInvalidArgument(call.status)) return call.status;
  // The JSON path stringified the whole value before mapping any of it, so
  // a cycle or a throwing getter anywhere won over a mapping error. The
  // codec stops at the first wrong field; only then is the rest of the
  // value looked at, by JSON.stringify itself.
  duk_dup(ctx, idx);
  auto stringify = [](duk_context* c, void*) -> duk_ret_t {
    duk_json_encode(c, -1);
    return 0;
  };
  if (duk_safe_call(ctx, stringify, nullptr, 1, 1) != DUK_EXEC_SUCCESS) {
    std::string message = duk_safe_to_string(ctx, -1);
    duk_set_top(ctx, top);
    if (absl::StrContains(message, "cyclic")) message = "cyclic reference to an object found";
    return absl::FailedPreconditionError(message);
  }
  duk_set_top(ctx, top);
  return call.status;
}

absl::Status PushDecodedMessage(duk_context* ctx, const gc::ProtoRegistry& registry, const MessagePlan& plan,
                                std::string_view bytes) {
  Decoder decoder(ctx, registry);
  if (!decoder.Scan(plan, bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot parse the bytes as ", plan.descriptor->full_name()));
  }
  const duk_idx_t top = duk_get_top(ctx);
  absl::Status st = decoder.Push();
  if (!st.ok()) {
    duk_set_top(ctx, top);
    return st;
  }
  duk_set_top(ctx, top + 1);
  return absl::OkStatus();
}

}  // namespace barrage::agent::js
