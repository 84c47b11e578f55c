#include "agent/grpc/json_codec.h"

#include <algorithm>
#include <cfloat>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "agent/grpc/proto_registry.h"
#include "agent/grpc/protojson_values.h"
#include "common/status_macros.h"
#include "google/protobuf/arena.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/message.h"
#include "google/protobuf/wire_format_lite.h"

namespace barrage::agent::grpc_client {
namespace {

namespace pb = ::google::protobuf;
using pb::FieldDescriptor;
using pb::Message;
using pb::Reflection;

// Debian's abseil has its own string_view; StrCat needs it spelled out.
absl::string_view Av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// ---------------------------------------------------------------------------
// Well-known types: they have JSON forms of their own.

enum class Wkt {
  kNone, kAny, kTimestamp, kDuration, kStruct, kValue, kListValue, kEmpty, kFieldMask,
  kWrapper,  // DoubleValue … BytesValue: the bare "value" field
};

Wkt WellKnownKind(const pb::Descriptor* type) {
  // The package test first: most messages are not well-known, and this runs
  // for every message written or read.
  if (type->file()->package() != "google.protobuf") return Wkt::kNone;
  const std::string& n = type->name();
  if (n == "Any") return Wkt::kAny;
  if (n == "Timestamp") return Wkt::kTimestamp;
  if (n == "Duration") return Wkt::kDuration;
  if (n == "Struct") return Wkt::kStruct;
  if (n == "Value") return Wkt::kValue;
  if (n == "ListValue") return Wkt::kListValue;
  if (n == "Empty") return Wkt::kEmpty;
  if (n == "FieldMask") return Wkt::kFieldMask;
  if (n == "DoubleValue" || n == "FloatValue" || n == "Int64Value" || n == "UInt64Value" ||
      n == "Int32Value" || n == "UInt32Value" || n == "BoolValue" || n == "StringValue" || n == "BytesValue") {
    return Wkt::kWrapper;
  }
  return Wkt::kNone;
}

bool IsNullValueEnum(const FieldDescriptor* f) {
  return f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM && f->enum_type()->full_name() == "google.protobuf.NullValue";
}
bool IsValueMessage(const FieldDescriptor* f) {
  return f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE && f->message_type()->full_name() == "google.protobuf.Value";
}

template <typename T>
void AppendInt(T v, std::string* out) {
  char buf[24];
  auto res = std::to_chars(buf, buf + sizeof(buf), v);
  out->append(buf, res.ptr - buf);
}

// ---------------------------------------------------------------------------
// Writer: a message's reflection -> k6's JSON.

class Writer {
 public:
  Writer(const ProtoRegistry& registry, std::string* out) : registry_(registry), out_(*out) {}

  absl::Status WriteMessage(const Message& m) {
    Wkt kind = WellKnownKind(m.GetDescriptor());
    if (kind != Wkt::kNone) return WriteWellKnown(m, kind);
    out_.push_back('{');
    bool first = true;
    BARRAGE_RETURN_IF_ERROR(WriteFields(m, &first));
    out_.push_back('}');
    return absl::OkStatus();
  }

  // {"@type": url, …}. kNotFound when the registry does not know the type.
  absl::Status WriteAny(std::string_view type_url, std::string_view value) {
    if (type_url.empty() && value.empty()) {
      out_.append("{}");
      return absl::OkStatus();
    }
    std::string_view name = type_url.substr(type_url.rfind('/') + 1);
    const pb::Descriptor* type = registry_.FindMessageType(name);
    if (type == nullptr) {
      return absl::NotFoundError(absl::StrCat("unable to resolve \"", Av(type_url), "\": not found"));
    }
    std::unique_ptr<Message> inner(registry_.Prototype(type)->New());
    if (!inner->ParsePartialFromArray(value.data(), static_cast<int>(value.size()))) {
      return absl::InvalidArgumentError(absl::StrCat("invalid bytes for ", type->full_name(), " in Any"));
    }
    out_.append("{\"@type\":");
    AppendJsonString(type_url, &out_);
    Wkt kind = WellKnownKind(type);
    if (kind != Wkt::kNone) {
      out_.append(",\"value\":");
      BARRAGE_RETURN_IF_ERROR(WriteWellKnown(*inner, kind));
    } else {
      bool first = false;
      BARRAGE_RETURN_IF_ERROR(WriteFields(*inner, &first));
    }
    out_.push_back('}');
    return absl::OkStatus();
  }

 private:
  void Key(const std::string& name, bool* first) {
    if (!*first) out_.push_back(',');
    *first = false;
    AppendJsonString(name, &out_);
    out_.push_back(':');
  }

  absl::Status WriteFields(const Message& m, bool* first) {
    const pb::Descriptor* type = m.GetDescriptor();
    const Reflection* r = m.GetReflection();
    for (int i = 0; i < type->field_count(); ++i) {
      const FieldDescriptor* f = type->field(i);
      if (f->is_repeated()) {
        Key(f->json_name(), first);
        BARRAGE_RETURN_IF_ERROR(f->is_map() ? WriteMap(m, f) : WriteList(m, f));
        continue;
      }
      const bool has = r->HasField(m, f);
      if (!has && f->containing_oneof() != nullptr) continue;  // proto3 optional and oneofs: absent
      Key(f->json_name(), first);
      // Unset messages and proto2 scalars: null, as Go's EmitUnpopulated does.
      if (!has && (f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE ||
                   f->file()->syntax() == pb::FileDescriptor::SYNTAX_PROTO2)) {
        out_.append("null");
        continue;
      }
      BARRAGE_RETURN_IF_ERROR(WriteValue(m, r, f, -1));
    }
    return absl::OkStatus();
  }

  absl::Status WriteList(const Message& m, const FieldDescriptor* f) {
    const Reflection* r = m.GetReflection();
    const int n = r->FieldSize(m, f);
    out_.push_back('[');
    for (int i = 0; i < n; ++i) {
      if (i) out_.push_back(',');
      BARRAGE_RETURN_IF_ERROR(WriteValue(m, r, f, i));
    }
    out_.push_back(']');
    return absl::OkStatus();
  }

  absl::Status WriteMap(const Message& m, const FieldDescriptor* f) {
    const Reflection* r = m.GetReflection();
    const int n = r->FieldSize(m, f);
    const FieldDescriptor* key_field = f->message_type()->map_key();
    const FieldDescriptor* value_field = f->message_type()->map_value();
    // Go sorts map keys (numbers by value, strings by bytes, false first).
    struct Entry {
      const Message* msg;
      std::string key;
      int64_t i = 0;
      uint64_t u = 0;
    };
    std::vector<Entry> entries;
    entries.reserve(n);
    for (int i = 0; i < n; ++i) {
      const Message& e = r->GetRepeatedMessage(m, f, i);
      const Reflection* er = e.GetReflection();
      Entry entry{&e, {}};
      switch (key_field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING: entry.key = er->GetString(e, key_field); break;
        case FieldDescriptor::CPPTYPE_BOOL:
          entry.u = er->GetBool(e, key_field);
          entry.key = entry.u ? "true" : "false";
          break;
        case FieldDescriptor::CPPTYPE_INT32: entry.i = er->GetInt32(e, key_field); entry.key = absl::StrCat(entry.i); break;
        case FieldDescriptor::CPPTYPE_INT64: entry.i = er->GetInt64(e, key_field); entry.key = absl::StrCat(entry.i); break;
        case FieldDescriptor::CPPTYPE_UINT32: entry.u = er->GetUInt32(e, key_field); entry.key = absl::StrCat(entry.u); break;
        case FieldDescriptor::CPPTYPE_UINT64: entry.u = er->GetUInt64(e, key_field); entry.key = absl::StrCat(entry.u); break;
        default: return absl::InternalError("invalid map key type");
      }
      entries.push_back(std::move(entry));
    }
    // Stable, so that of duplicate keys the last on the wire is kept below.
    std::stable_sort(entries.begin(), entries.end(), [&](const Entry& a, const Entry& b) {
      switch (key_field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING: return a.key < b.key;
        case FieldDescriptor::CPPTYPE_INT32:
        case FieldDescriptor::CPPTYPE_INT64: return a.i < b.i;
        default: return a.u < b.u;
      }
    });
    // Duplicate keys on the wire: the last one wins, as when parsing a map.
    out_.push_back('{');
    bool first = true;
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i + 1 < entries.size() && entries[i + 1].key == entries[i].key) continue;
      Key(entries[i].key, &first);
      BARRAGE_RETURN_IF_ERROR(WriteValue(*entries[i].msg, entries[i].msg->GetReflection(), value_field, -1));
    }
    out_.push_back('}');
    return absl::OkStatus();
  }

  // One value of f: the singular one (index < 0) or element `index`.
  absl::Status WriteValue(const Message& m, const Reflection* r, const FieldDescriptor* f, int index) {
    const bool rep = index >= 0;
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32: AppendInt(rep ? r->GetRepeatedInt32(m, f, index) : r->GetInt32(m, f), &out_); break;
      case FieldDescriptor::CPPTYPE_UINT32: AppendInt(rep ? r->GetRepeatedUInt32(m, f, index) : r->GetUInt32(m, f), &out_); break;
      case FieldDescriptor::CPPTYPE_INT64:
        out_.push_back('"');
        AppendInt(rep ? r->GetRepeatedInt64(m, f, index) : r->GetInt64(m, f), &out_);
        out_.push_back('"');
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        out_.push_back('"');
        AppendInt(rep ? r->GetRepeatedUInt64(m, f, index) : r->GetUInt64(m, f), &out_);
        out_.push_back('"');
        break;
      case FieldDescriptor::CPPTYPE_FLOAT: AppendJsonFloat(rep ? r->GetRepeatedFloat(m, f, index) : r->GetFloat(m, f), &out_); break;
      case FieldDescriptor::CPPTYPE_DOUBLE: AppendJsonFloat(rep ? r->GetRepeatedDouble(m, f, index) : r->GetDouble(m, f), &out_); break;
      case FieldDescriptor::CPPTYPE_BOOL: out_.append((rep ? r->GetRepeatedBool(m, f, index) : r->GetBool(m, f)) ? "true" : "false"); break;
      case FieldDescriptor::CPPTYPE_STRING: {
        std::string scratch;
        const std::string& s = rep ? r->GetRepeatedStringReference(m, f, index, &scratch) : r->GetStringReference(m, f, &scratch);
        if (f->type() == FieldDescriptor::TYPE_BYTES) {
          out_.push_back('"');
          out_.append(absl::Base64Escape(s));
          out_.push_back('"');
        } else {
          AppendJsonString(s, &out_);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        if (IsNullValueEnum(f)) {
          out_.append("null");
          break;
        }
        int number = rep ? r->GetRepeatedEnumValue(m, f, index) : r->GetEnumValue(m, f);
        const pb::EnumValueDescriptor* v = f->enum_type()->FindValueByNumber(number);
        if (v != nullptr) {
          AppendJsonString(v->name(), &out_);
        } else {
          AppendInt(number, &out_);
        }
        break;
      }
      case FieldDescriptor::CPPTYPE_MESSAGE:
        return WriteMessage(rep ? r->GetRepeatedMessage(m, f, index) : r->GetMessage(m, f));
    }
    return absl::OkStatus();
  }

  absl::Status WriteWellKnown(const Message& m, Wkt kind) {
    const pb::Descriptor* type = m.GetDescriptor();
    const Reflection* r = m.GetReflection();
    auto field = [type](int number) { return type->FindFieldByNumber(number); };
    switch (kind) {
      case Wkt::kNone: break;
      case Wkt::kWrapper: return WriteValue(m, r, field(1), -1);
      case Wkt::kEmpty: out_.append("{}"); return absl::OkStatus();
      case Wkt::kAny: {
        std::string url_scratch, value_scratch;
        return WriteAny(r->GetStringReference(m, field(1), &url_scratch),
                        r->GetStringReference(m, field(2), &value_scratch));
      }
      case Wkt::kTimestamp: {
        out_.push_back('"');
        BARRAGE_RETURN_IF_ERROR(FormatTimestamp(r->GetInt64(m, field(1)), r->GetInt32(m, field(2)), &out_));
        out_.push_back('"');
        return absl::OkStatus();
      }
      case Wkt::kDuration: {
        out_.push_back('"');
        BARRAGE_RETURN_IF_ERROR(FormatDuration(r->GetInt64(m, field(1)), r->GetInt32(m, field(2)), &out_));
        out_.push_back('"');
        return absl::OkStatus();
      }
      case Wkt::kStruct: return WriteMap(m, field(1));
      case Wkt::kListValue: return WriteList(m, field(1));
      case Wkt::kValue: {
        const FieldDescriptor* set = r->GetOneofFieldDescriptor(m, type->oneof_decl(0));
        // A Value with no kind is an error in Go; null is kinder to scripts.
        if (set == nullptr || set->number() == 1) {
          out_.append("null");
          return absl::OkStatus();
        }
        return WriteValue(m, r, set, -1);
      }
      case Wkt::kFieldMask: {
        const FieldDescriptor* paths = field(1);
        std::string joined;
        for (int i = 0; i < r->FieldSize(m, paths); ++i) {
          if (i) joined.push_back(',');
          joined.append(FieldMaskPathToJson(r->GetRepeatedString(m, paths, i)));
        }
        AppendJsonString(joined, &out_);
        return absl::OkStatus();
      }
    }
    return absl::InternalError("unhandled well-known type");
  }

  const ProtoRegistry& registry_;
  std::string& out_;
};

// ---------------------------------------------------------------------------
// A small JSON DOM. Numbers keep their text, so integers past 2^53 and the
// exact rules for integral values ("1e2" is an int32, "1.5" is not) are
// decided by the field they land in, as in Go.

struct Json {
  enum Kind : uint8_t { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = kNull;
  bool boolean = false;
  std::string text;               // a string's value, or a number's literal
  std::vector<Json> items;        // array elements, or object member values
  std::vector<std::string> keys;  // object member names, parallel to items

  const Json* Find(std::string_view key) const {
    for (size_t i = 0; i < keys.size(); ++i) {
      if (keys[i] == key) return &items[i];
    }
    return nullptr;
  }
};

const char* KindName(Json::Kind k) {
  switch (k) {
    case Json::kNull: return "null";
    case Json::kBool: return "bool";
    case Json::kNumber: return "number";
    case Json::kString: return "string";
    case Json::kArray: return "array";
    case Json::kObject: return "object";
  }
  return "?";
}

class JsonParser {
 public:
  explicit JsonParser(std::string_view in) : in_(in) {}

  absl::Status Parse(Json* out) {
    SkipSpace();
    BARRAGE_RETURN_IF_ERROR(ParseValue(out, 0));
    SkipSpace();
    if (pos_ != in_.size()) return Error("unexpected data after the top-level value");
    return absl::OkStatus();
  }

 private:
  static constexpr int kMaxDepth = 1000;

  absl::Status Error(std::string_view what) const {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON at offset ", pos_, ": ", Av(what)));
  }
  void SkipSpace() {
    while (pos_ < in_.size() && (in_[pos_] == ' ' || in_[pos_] == '\t' || in_[pos_] == '\n' || in_[pos_] == '\r')) ++pos_;
  }
  bool Literal(std::string_view word) {
    if (in_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  absl::Status ParseValue(Json* out, int depth) {
    if (depth > kMaxDepth) return Error("nested too deeply");
    if (pos_ >= in_.size()) return Error("unexpected end of input");
    char c = in_[pos_];
    switch (c) {
      case '{': {
        out->kind = Json::kObject;
        ++pos_;
        SkipSpace();
        if (pos_ < in_.size() && in_[pos_] == '}') {
          ++pos_;
          return absl::OkStatus();
        }
        while (true) {
          SkipSpace();
          if (pos_ >= in_.size() || in_[pos_] != '"') return Error("expected a member name");
          out->keys.emplace_back();
          BARRAGE_RETURN_IF_ERROR(ParseString(&out->keys.back()));
          SkipSpace();
          if (pos_ >= in_.size() || in_[pos_] != ':') return Error("expected ':'");
          ++pos_;
          SkipSpace();
          out->items.emplace_back();
          BARRAGE_RETURN_IF_ERROR(ParseValue(&out->items.back(), depth + 1));
          SkipSpace();
          if (pos_ < in_.size() && in_[pos_] == ',') {
            ++pos_;
            continue;
          }
          if (pos_ < in_.size() && in_[pos_] == '}') {
            ++pos_;
            return absl::OkStatus();
          }
          return Error("expected ',' or '}'");
        }
      }
      case '[': {
        out->kind = Json::kArray;
        ++pos_;
        SkipSpace();
        if (pos_ < in_.size() && in_[pos_] == ']') {
          ++pos_;
          return absl::OkStatus();
        }
        while (true) {
          SkipSpace();
          out->items.emplace_back();
          BARRAGE_RETURN_IF_ERROR(ParseValue(&out->items.back(), depth + 1));
          SkipSpace();
          if (pos_ < in_.size() && in_[pos_] == ',') {
            ++pos_;
            continue;
          }
          if (pos_ < in_.size() && in_[pos_] == ']') {
            ++pos_;
            return absl::OkStatus();
          }
          return Error("expected ',' or ']'");
        }
      }
      case '"':
        out->kind = Json::kString;
        return ParseString(&out->text);
      case 't':
      case 'f':
      case 'n':
        if (Literal("true")) {
          out->kind = Json::kBool;
          out->boolean = true;
        } else if (Literal("false")) {
          out->kind = Json::kBool;
        } else if (Literal("null")) {
          out->kind = Json::kNull;
        } else {
          return Error("invalid literal");
        }
        return absl::OkStatus();
      default: {
        size_t start = pos_;
        while (pos_ < in_.size() && (std::isdigit(static_cast<unsigned char>(in_[pos_])) || in_[pos_] == '-' ||
                                     in_[pos_] == '+' || in_[pos_] == '.' || in_[pos_] == 'e' || in_[pos_] == 'E')) {
          ++pos_;
        }
        std::string_view text = in_.substr(start, pos_ - start);
        if (text.empty()) return Error(absl::StrCat("invalid character '", std::string(1, c), "'"));
        if (!IsJsonNumber(text)) return Error(absl::StrCat("invalid number ", Av(text)));
        out->kind = Json::kNumber;
        out->text = std::string(text);
        return absl::OkStatus();
      }
    }
  }

  static void AppendUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }

  bool Hex4(uint32_t* v) {
    if (pos_ + 4 > in_.size()) return false;
    *v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = in_[pos_++];
      *v <<= 4;
      if (c >= '0' && c <= '9') *v |= c - '0';
      else if (c >= 'a' && c <= 'f') *v |= c - 'a' + 10;
      else if (c >= 'A' && c <= 'F') *v |= c - 'A' + 10;
      else return false;
    }
    return true;
  }

  absl::Status ParseString(std::string* out) {
    ++pos_;  // the opening quote
    while (true) {
      size_t start = pos_;
      while (pos_ < in_.size() && in_[pos_] != '"' && in_[pos_] != '\\' && static_cast<unsigned char>(in_[pos_]) >= 0x20) {
        ++pos_;
      }
      out->append(in_.data() + start, pos_ - start);
      if (pos_ >= in_.size()) return Error("unterminated string");
      char c = in_[pos_++];
      if (c == '"') return absl::OkStatus();
      if (c != '\\') return Error("control character in string");
      if (pos_ >= in_.size()) return Error("unterminated string");
      char e = in_[pos_++];
      switch (e) {
        case '"': out->push_back('"'); break;
        case '\\': out->push_back('\\'); break;
        case '/': out->push_back('/'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'n': out->push_back('\n'); break;
        case 'r': out->push_back('\r'); break;
        case 't': out->push_back('\t'); break;
        case 'u': {
          uint32_t cp;
          if (!Hex4(&cp)) return Error("invalid \\u escape");
          if (cp >= 0xD800 && cp < 0xDC00 && pos_ + 1 < in_.size() && in_[pos_] == '\\' && in_[pos_ + 1] == 'u') {
            size_t save = pos_;
            pos_ += 2;
            uint32_t low;
            if (Hex4(&low) && low >= 0xDC00 && low < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else {
              pos_ = save;
              cp = 0xFFFD;
            }
          } else if (cp >= 0xD800 && cp < 0xE000) {
            cp = 0xFFFD;  // a lone surrogate, as Go decodes it
          }
          AppendUtf8(cp, out);
          break;
        }
        default: return Error("invalid escape");
      }
    }
  }

  std::string_view in_;
  size_t pos_ = 0;
};

// ---------------------------------------------------------------------------
// Reader: the DOM -> a message, through reflection.

class Reader {
 public:
  explicit Reader(const ProtoRegistry& registry) : registry_(registry) {}

  absl::Status ReadMessage(const Json& j, Message* m) {
    Wkt kind = WellKnownKind(m->GetDescriptor());
    if (kind != Wkt::kNone) return ReadWellKnown(j, m, kind);
    if (j.kind != Json::kObject) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid value for ", m->GetDescriptor()->full_name(), ": expected an object, got ", KindName(j.kind)));
    }
    return ReadFields(j, m, /*skip_type=*/false);
  }

 private:
  static const FieldDescriptor* FindField(const pb::Descriptor* type, std::string_view key) {
    // Linear: messages are small, and a map per type would need locking.
    for (int i = 0; i < type->field_count(); ++i) {
      const FieldDescriptor* f = type->field(i);
      if (f->json_name() == key || f->name() == key) return f;
    }
    return nullptr;
  }

  absl::Status ReadFields(const Json& j, Message* m, bool skip_type) {
    const pb::Descriptor* type = m->GetDescriptor();
    const Reflection* r = m->GetReflection();
    std::vector<bool> seen(type->field_count(), false);
    std::vector<bool> seen_oneof(type->oneof_decl_count(), false);
    for (size_t i = 0; i < j.keys.size(); ++i) {
      const std::string& key = j.keys[i];
      if (skip_type && key == "@type") continue;
      const FieldDescriptor* f = FindField(type, key);
      if (f == nullptr) return absl::InvalidArgumentError(absl::StrCat("unknown field \"", key, "\" in ", type->full_name()));
      if (seen[f->index()]) return absl::InvalidArgumentError(absl::StrCat("duplicate field \"", key, "\""));
      seen[f->index()] = true;
      const Json& v = j.items[i];
      if (v.kind == Json::kNull && !IsValueMessage(f) && !IsNullValueEnum(f)) continue;  // null leaves it unset
      if (f->is_map()) {
        BARRAGE_RETURN_IF_ERROR(ReadMap(v, m, f));
      } else if (f->is_repeated()) {
        if (v.kind != Json::kArray) {
          return absl::InvalidArgumentError(absl::StrCat("invalid value for repeated field \"", key, "\": expected an array, got ", KindName(v.kind)));
        }
        for (const Json& item : v.items) {
          if (item.kind == Json::kNull && !IsValueMessage(f) && !IsNullValueEnum(f)) {
            return absl::InvalidArgumentError(absl::StrCat("null in repeated field \"", key, "\""));
          }
          BARRAGE_RETURN_IF_ERROR(ReadValue(item, m, f, /*add=*/true));
        }
      } else {
        if (const pb::OneofDescriptor* o = f->containing_oneof()) {
          if (seen_oneof[o->index()]) {
            return absl::InvalidArgumentError(
                absl::StrCat("error parsing \"", key, "\", oneof ", o->full_name(), " is already set"));
          }
          seen_oneof[o->index()] = true;
        }
        BARRAGE_RETURN_IF_ERROR(ReadValue(v, m, f, /*add=*/false));
      }
    }
    (void)r;
    return absl::OkStatus();
  }

  absl::Status ReadMap(const Json& v, Message* m, const FieldDescriptor* f) {
    if (v.kind != Json::kObject) {
      return absl::InvalidArgumentError(absl::StrCat("invalid value for map field \"", f->json_name(), "\": expected an object, got ", KindName(v.kind)));
    }
    const FieldDescriptor* key_field = f->message_type()->map_key();
    const FieldDescriptor* value_field = f->message_type()->map_value();
    for (size_t i = 0; i < v.keys.size(); ++i) {
      Message* entry = m->GetReflection()->AddMessage(m, f);
      const Reflection* er = entry->GetReflection();
      const std::string& key = v.keys[i];
      switch (key_field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_STRING: er->SetString(entry, key_field, key); break;
        case FieldDescriptor::CPPTYPE_BOOL:
          if (key != "true" && key != "false") return absl::InvalidArgumentError(absl::StrCat("invalid map key \"", key, "\" for bool"));
          er->SetBool(entry, key_field, key == "true");
          break;
        default: {
          Json k;
          k.kind = Json::kString;
          k.text = key;
          BARRAGE_RETURN_IF_ERROR(ReadValue(k, entry, key_field, false));
        }
      }
      const Json& item = v.items[i];
      if (item.kind == Json::kNull && !IsValueMessage(value_field) && !IsNullValueEnum(value_field)) {
        return absl::InvalidArgumentError(absl::StrCat("null value for map key \"", key, "\" in field \"", f->json_name(), "\""));
      }
      BARRAGE_RETURN_IF_ERROR(ReadValue(item, entry, value_field, false));
    }
    return absl::OkStatus();
  }

  static absl::Status BadValue(const FieldDescriptor* f, const Json& v, absl::string_view why = "") {
    std::string shown = v.kind == Json::kString ? absl::StrCat("\"", v.text, "\"")
                        : v.kind == Json::kNumber ? v.text
                                                  : KindName(v.kind);
    return absl::InvalidArgumentError(absl::StrCat("invalid value for ", FieldDescriptor::TypeName(f->type()),
                                                   " field \"", f->json_name(), "\": ", shown,
                                                   why.empty() ? "" : " (", why, why.empty() ? "" : ")"));
  }

  // Sets f (add: appends to the repeated f) from v.
  absl::Status ReadValue(const Json& v, Message* m, const FieldDescriptor* f, bool add) {
    const Reflection* r = m->GetReflection();
    switch (f->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
      case FieldDescriptor::CPPTYPE_INT64:
      case FieldDescriptor::CPPTYPE_UINT32:
      case FieldDescriptor::CPPTYPE_UINT64: {
        if (v.kind != Json::kNumber && v.kind != Json::kString) return BadValue(f, v);
        bool neg = false;
        uint64_t mag = 0;
        absl::Status st = ParseJsonInteger(v.text, &neg, &mag);
        if (!st.ok()) return BadValue(f, v, st.message());
        switch (f->cpp_type()) {
          case FieldDescriptor::CPPTYPE_INT32: {
            if (mag > (neg ? 2147483648ull : 2147483647ull)) return BadValue(f, v, "out of range");
            int32_t x = neg ? static_cast<int32_t>(-static_cast<int64_t>(mag)) : static_cast<int32_t>(mag);
            add ? r->AddInt32(m, f, x) : r->SetInt32(m, f, x);
            break;
          }
          case FieldDescriptor::CPPTYPE_INT64: {
            if (mag > (neg ? 9223372036854775808ull : 9223372036854775807ull)) return BadValue(f, v, "out of range");
            int64_t x = neg ? static_cast<int64_t>(0 - mag) : static_cast<int64_t>(mag);
            add ? r->AddInt64(m, f, x) : r->SetInt64(m, f, x);
            break;
          }
          case FieldDescriptor::CPPTYPE_UINT32:
            if ((neg && mag != 0) || mag > 4294967295ull) return BadValue(f, v, "out of range");
            add ? r->AddUInt32(m, f, static_cast<uint32_t>(mag)) : r->SetUInt32(m, f, static_cast<uint32_t>(mag));
            break;
          default:
            if (neg && mag != 0) return BadValue(f, v, "out of range");
            add ? r->AddUInt64(m, f, mag) : r->SetUInt64(m, f, mag);
        }
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_FLOAT:
      case FieldDescriptor::CPPTYPE_DOUBLE: {
        double d;
        if (v.kind == Json::kString && v.text == "NaN") {
          d = std::nan("");
        } else if (v.kind == Json::kString && v.text == "Infinity") {
          d = HUGE_VAL;
        } else if (v.kind == Json::kString && v.text == "-Infinity") {
          d = -HUGE_VAL;
        } else if ((v.kind == Json::kNumber || v.kind == Json::kString) && IsJsonNumber(v.text)) {
          d = std::strtod(v.text.c_str(), nullptr);
          if (std::isinf(d)) return BadValue(f, v, "out of range");
        } else {
          return BadValue(f, v);
        }
        if (f->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
          if (std::isfinite(d) && std::fabs(d) > FLT_MAX) return BadValue(f, v, "out of range");
          add ? r->AddFloat(m, f, static_cast<float>(d)) : r->SetFloat(m, f, static_cast<float>(d));
        } else {
          add ? r->AddDouble(m, f, d) : r->SetDouble(m, f, d);
        }
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_BOOL:
        if (v.kind != Json::kBool) return BadValue(f, v);
        add ? r->AddBool(m, f, v.boolean) : r->SetBool(m, f, v.boolean);
        return absl::OkStatus();
      case FieldDescriptor::CPPTYPE_STRING: {
        if (v.kind != Json::kString) return BadValue(f, v);
        if (f->type() != FieldDescriptor::TYPE_BYTES) {
          add ? r->AddString(m, f, v.text) : r->SetString(m, f, v.text);
          return absl::OkStatus();
        }
        // Go picks the URL alphabet when '-' or '_' appear; padding is optional.
        std::string bytes;
        bool ok = v.text.find_first_of("-_") != std::string::npos ? absl::WebSafeBase64Unescape(v.text, &bytes)
                                                                  : absl::Base64Unescape(v.text, &bytes);
        if (!ok) return BadValue(f, v, "invalid base64");
        add ? r->AddString(m, f, std::move(bytes)) : r->SetString(m, f, std::move(bytes));
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_ENUM: {
        int number = 0;
        if (v.kind == Json::kNull && IsNullValueEnum(f)) {
          number = 0;
        } else if (v.kind == Json::kString) {
          const pb::EnumValueDescriptor* ev = f->enum_type()->FindValueByName(v.text);
          if (ev == nullptr) return BadValue(f, v, absl::StrCat("no such value in enum ", f->enum_type()->full_name()));
          number = ev->number();
        } else if (v.kind == Json::kNumber) {
          bool neg;
          uint64_t mag;
          if (!ParseJsonInteger(v.text, &neg, &mag).ok() || mag > (neg ? 2147483648ull : 2147483647ull)) return BadValue(f, v);
          number = neg ? static_cast<int32_t>(-static_cast<int64_t>(mag)) : static_cast<int32_t>(mag);
        } else {
          return BadValue(f, v);
        }
        add ? r->AddEnumValue(m, f, number) : r->SetEnumValue(m, f, number);
        return absl::OkStatus();
      }
      case FieldDescriptor::CPPTYPE_MESSAGE: {
        Message* sub = add ? r->AddMessage(m, f) : r->MutableMessage(m, f);
        absl::Status st = ReadMessage(v, sub);
        if (!st.ok() && f->containing_type()->file()->package() != "google.protobuf") {
          // Say which field, once, at the innermost user-visible level.
          if (!absl::StrContains(st.message(), "field \"")) {
            return absl::InvalidArgumentError(absl::StrCat("field \"", f->json_name(), "\": ", st.message()));
          }
        }
        return st;
      }
    }
    return absl::InternalError("unhandled field type");
  }

  absl::Status ReadWellKnown(const Json& j, Message* m, Wkt kind) {
    const pb::Descriptor* type = m->GetDescriptor();
    const Reflection* r = m->GetReflection();
    auto field = [type](int number) { return type->FindFieldByNumber(number); };
    auto bad = [&](absl::string_view why) {
      std::string shown = j.kind == Json::kString ? absl::StrCat("\"", j.text, "\"") : j.kind == Json::kNumber ? j.text : KindName(j.kind);
      return absl::InvalidArgumentError(absl::StrCat("invalid ", type->full_name(), " value ", shown, ": ", why));
    };
    switch (kind) {
      case Wkt::kNone: break;
      case Wkt::kWrapper:
        if (j.kind == Json::kNull) return bad("expected a value");
        return ReadValue(j, m, field(1), false);
      case Wkt::kEmpty:
        if (j.kind != Json::kObject) return bad("expected an object");
        if (!j.keys.empty()) return absl::InvalidArgumentError(absl::StrCat("unknown field \"", j.keys[0], "\" in google.protobuf.Empty"));
        return absl::OkStatus();
      case Wkt::kAny: {
        if (j.kind != Json::kObject) return bad("expected an object");
        if (j.keys.empty()) return absl::OkStatus();
        const Json* t = j.Find("@type");
        if (t == nullptr) return absl::InvalidArgumentError("missing \"@type\" field in google.protobuf.Any");
        if (t->kind != Json::kString) return absl::InvalidArgumentError("invalid \"@type\" field in google.protobuf.Any");
        std::string_view url = t->text;
        const pb::Descriptor* inner_type = registry_.FindMessageType(url.substr(url.rfind('/') + 1));
        if (inner_type == nullptr) return absl::InvalidArgumentError(absl::StrCat("unable to resolve \"", Av(url), "\": not found"));
        std::unique_ptr<Message> inner(registry_.Prototype(inner_type)->New());
        Wkt inner_kind = WellKnownKind(inner_type);
        if (inner_kind != Wkt::kNone) {
          const Json* value = j.Find("value");
          if (value == nullptr) return absl::InvalidArgumentError(absl::StrCat("missing \"value\" field in Any of ", inner_type->full_name()));
          for (const std::string& k : j.keys) {
            if (k != "@type" && k != "value") return absl::InvalidArgumentError(absl::StrCat("unknown field \"", k, "\" in Any"));
          }
          BARRAGE_RETURN_IF_ERROR(ReadWellKnown(*value, inner.get(), inner_kind));
        } else {
          BARRAGE_RETURN_IF_ERROR(ReadFields(j, inner.get(), /*skip_type=*/true));
        }
        r->SetString(m, field(1), std::string(url));
        r->SetString(m, field(2), inner->SerializePartialAsString());
        return absl::OkStatus();
      }
      case Wkt::kTimestamp: {
        if (j.kind != Json::kString) return bad("expected an RFC 3339 string");
        int64_t seconds;
        int32_t nanos;
        std::string why;
        if (!ParseTimestamp(j.text, &seconds, &nanos, &why)) return bad(why);
        r->SetInt64(m, field(1), seconds);
        r->SetInt32(m, field(2), nanos);
        return absl::OkStatus();
      }
      case Wkt::kDuration: {
        int64_t seconds;
        int32_t nanos;
        std::string why = "expected a string like \"1.5s\"";
        if (j.kind != Json::kString || !ParseDuration(j.text, &seconds, &nanos, &why)) return bad(why);
        r->SetInt64(m, field(1), seconds);
        r->SetInt32(m, field(2), nanos);
        return absl::OkStatus();
      }
      case Wkt::kStruct: {
        if (j.kind != Json::kObject) return bad("expected an object");
        return ReadMap(j, m, field(1));
      }
      case Wkt::kListValue: {
        if (j.kind != Json::kArray) return bad("expected an array");
        for (const Json& item : j.items) BARRAGE_RETURN_IF_ERROR(ReadMessage(item, r->AddMessage(m, field(1))));
        return absl::OkStatus();
      }
      case Wkt::kValue:
        switch (j.kind) {
          case Json::kNull: r->SetEnumValue(m, field(1), 0); return absl::OkStatus();
          case Json::kNumber: return ReadValue(j, m, field(2), false);
          case Json::kString: r->SetString(m, field(3), j.text); return absl::OkStatus();
          case Json::kBool: r->SetBool(m, field(4), j.boolean); return absl::OkStatus();
          case Json::kObject: return ReadMessage(j, r->MutableMessage(m, field(5)));
          case Json::kArray: return ReadMessage(j, r->MutableMessage(m, field(6)));
        }
        break;
      case Wkt::kFieldMask: {
        if (j.kind != Json::kString) return bad("expected a string");
        if (j.text.empty()) return absl::OkStatus();
        for (absl::string_view path : absl::StrSplit(j.text, ',')) {
          std::string snake;
          if (!FieldMaskPathFromJson(std::string_view(path.data(), path.size()), &snake)) {
            return bad("paths must be lowerCamelCase");
          }
          r->AddString(m, field(1), std::move(snake));
        }
        return absl::OkStatus();
      }
    }
    return absl::InternalError("unhandled well-known type");
  }

  const ProtoRegistry& registry_;
};

// Messages decoded per response live on an arena that starts on the stack:
// small responses then cost no heap allocation for the message itself.
class ScratchArena {
 public:
  ScratchArena() : arena_(Options(block_)) {}
  pb::Arena* get() { return &arena_; }

 private:
  static pb::ArenaOptions Options(char* block) {
    pb::ArenaOptions o;
    o.initial_block = block;
    o.initial_block_size = kBlockSize;
    return o;
  }
  static constexpr size_t kBlockSize = 4096;
  alignas(8) char block_[kBlockSize];
  pb::Arena arena_;
};

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t start = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out->append(s.data() + start, i - start);
    start = i + 1;
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        out->append("\\u00");
        out->push_back(kHex[c >> 4]);
        out->push_back(kHex[c & 0xF]);
    }
  }
  out->append(s.data() + start, s.size() - start);
  out->push_back('"');
}

absl::StatusOr<std::string> JsonToBinary(const ProtoRegistry& registry, const pb::Descriptor* type,
                                         std::string_view json) {
  Json dom;
  BARRAGE_RETURN_IF_ERROR(JsonParser(json).Parse(&dom));
  ScratchArena arena;
  Message* message = registry.Prototype(type)->New(arena.get());
  BARRAGE_RETURN_IF_ERROR(Reader(registry).ReadMessage(dom, message));
  // Partial: a proto2 required field left out is the server's business.
  std::string out;
  if (!message->SerializePartialToString(&out)) return absl::InternalError("cannot serialise the request");
  return out;
}

absl::StatusOr<std::string> BinaryToJson(const ProtoRegistry& registry, const pb::Descriptor* type,
                                         std::string_view bytes) {
  ScratchArena arena;
  Message* message = registry.Prototype(type)->New(arena.get());
  if (!message->ParsePartialFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    return absl::InvalidArgumentError(absl::StrCat("cannot parse the bytes as ", type->full_name()));
  }
  std::string out;
  out.reserve(bytes.size() * 2 + 16);
  BARRAGE_RETURN_IF_ERROR(Writer(registry, &out).WriteMessage(*message));
  return out;
}

absl::StatusOr<std::string> DefaultJson(const ProtoRegistry& registry, const pb::Descriptor* type) {
  return BinaryToJson(registry, type, std::string_view());
}

std::string StatusErrorJson(const ProtoRegistry& registry, int code, std::string_view message,
                            std::string_view status_details_bin) {
  // google.rpc.Status is not in libprotobuf's pool, and its shape is fixed:
  // 1 code, 2 message, 3 repeated Any details (1 type_url, 2 value).
  std::vector<std::pair<std::string, std::string>> details;
  pb::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(status_details_bin.data()),
                              static_cast<int>(status_details_bin.size()));
  while (uint32_t tag = in.ReadTag()) {
    if (tag == ((3 << 3) | 2)) {
      std::string any;
      uint32_t len;
      if (!in.ReadVarint32(&len) || !in.ReadString(&any, static_cast<int>(len))) break;
      pb::io::CodedInputStream ain(reinterpret_cast<const uint8_t*>(any.data()), static_cast<int>(any.size()));
      std::pair<std::string, std::string> detail;
      bool ok = true;
      while (uint32_t atag = ain.ReadTag()) {
        uint32_t alen;
        if (atag == ((1 << 3) | 2) && ain.ReadVarint32(&alen)) {
          ok = ain.ReadString(&detail.first, static_cast<int>(alen));
        } else if (atag == ((2 << 3) | 2) && ain.ReadVarint32(&alen)) {
          ok = ain.ReadString(&detail.second, static_cast<int>(alen));
        } else {
          ok = pb::internal::WireFormatLite::SkipField(&ain, atag);
        }
        if (!ok) break;
      }
      if (ok) details.push_back(std::move(detail));
    } else if (!pb::internal::WireFormatLite::SkipField(&in, tag)) {
      break;
    }
  }
  std::string out = absl::StrCat("{\"code\":", code, ",\"message\":");
  AppendJsonString(message, &out);
  out.append(",\"details\":[");
  bool first = true;
  for (const auto& [url, value] : details) {
    std::string one;
    if (!Writer(registry, &one).WriteAny(url, value).ok()) continue;  // unresolvable: left out (§5)
    if (!first) out.push_back(',');
    first = false;
    out.append(one);
  }
  out.append("]}");
  return out;
}

}  // namespace barrage::agent::grpc_client
