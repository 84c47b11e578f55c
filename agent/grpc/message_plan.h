// What the direct codec (agent/js/proto_codec.h) needs to know about a
// message type, worked out once from its descriptor: each field's wire tag,
// JSON names, presence rule and type, lookups by number (decoding) and by
// name (encoding), and which well-known type it is. The codec runs once per
// request and response on the hot path; asking descriptors these questions
// every time (string compares for well-known types, a pool lookup per enum
// name, a scan per JSON key) cost more than the wire work itself.
//
// Plans are made by a ProtoRegistry (ProtoRegistry::Plan) and live as long
// as it does. Once built a plan is immutable, so any number of threads (the
// VUs sharing the registry) read it without locks. A plan points to the
// plans of its message-typed fields, recursive types included.
#ifndef BARRAGE_AGENT_GRPC_MESSAGE_PLAN_H_
#define BARRAGE_AGENT_GRPC_MESSAGE_PLAN_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/wire_format_lite.h"

namespace barrage::agent::grpc_client {

// The well-known types that have JSON forms of their own (spec §1.15).
enum class WellKnownType : uint8_t {
  kNone, kAny, kTimestamp, kDuration, kStruct, kValue, kListValue, kEmpty, kFieldMask,
  kWrapper,  // DoubleValue … BytesValue: the bare "value" field
};

struct MessagePlan;

// Names and numbers of an enum type, for both directions.
struct EnumPlan {
  const google::protobuf::EnumDescriptor* descriptor = nullptr;
  absl::flat_hash_map<std::string, int32_t> by_name;
  bool null_value = false;  // google.protobuf.NullValue: JSON null
  // The name k6 prints for `number` (the first declared, as with aliases),
  // or nullptr for a number the enum does not name.
  const std::string* NameOf(int32_t number) const;
};

struct FieldPlan {
  using Type = google::protobuf::FieldDescriptor::Type;
  using WireType = google::protobuf::internal::WireFormatLite::WireType;

  const google::protobuf::FieldDescriptor* descriptor = nullptr;
  Type type = google::protobuf::FieldDescriptor::TYPE_INT32;
  int number = 0;
  int index = 0;                   // in MessagePlan::fields (declaration order)
  WireType wire_type = google::protobuf::internal::WireFormatLite::WIRETYPE_VARINT;
  uint32_t tag = 0;                // number and wire_type, as on the wire
  bool repeated = false;
  bool map = false;                // repeated entries of `message` (key 1, value 2)
  bool packable = false;           // repeated scalar: accepted packed or not on the wire
  bool packed = false;             // and sent packed
  // Proto3 singular scalar outside any oneof: its default is not sent, and
  // it always reads back (never null, never absent).
  bool implicit_presence = false;
  // Unset reads as null: a singular message, or a proto2 scalar.
  bool null_when_unset = false;
  // JSON null is a value here (google.protobuf.Value, NullValue), not "unset".
  bool null_is_value = false;
  bool closed_enum = false;        // proto2 enum: unknown numbers on the wire are dropped
  bool strict_utf8 = false;        // proto3 string: invalid UTF-8 fails the parse
  // Request errors inside this message field are prefixed with its name,
  // unless the field belongs to a google.protobuf type (as json_codec does).
  bool names_errors = false;
  int oneof = -1;                  // index of the containing oneof (real or synthetic), or -1
  const MessagePlan* message = nullptr;  // message, group or map entry type
  const EnumPlan* enumeration = nullptr;
  // The value an unset field reads as when it is printed (map entries,
  // proto3 fields): the descriptor's default.
  uint64_t default_bits = 0;       // integers, bool, enum number, float/double bits
  std::string default_string;
  std::string json_name;           // the key in responses
  std::string name;                // the proto name, also accepted in requests
};

struct MessagePlan {
  const google::protobuf::Descriptor* descriptor = nullptr;
  WellKnownType well_known = WellKnownType::kNone;
  bool map_entry = false;
  std::vector<FieldPlan> fields;       // declaration order
  std::vector<int> number_order;       // indices of fields by ascending number
  std::vector<std::string> oneof_names;  // full names, by oneof index
  // Field by number: a dense table when numbers are small (the usual case).
  std::vector<int16_t> dense;          // number -> index + 1, 0 when unknown
  absl::flat_hash_map<int, int> sparse;
  // Field by JSON name or proto name: the first field in declaration order
  // that has the key as either, as protojson looks them up.
  absl::flat_hash_map<std::string, int> by_name;

  const FieldPlan* FieldByNumber(int number) const {
    if (number >= 0 && static_cast<size_t>(number) < dense.size()) {
      const int i = dense[number];
      return i == 0 ? nullptr : &fields[i - 1];
    }
    if (sparse.empty()) return nullptr;
    auto it = sparse.find(number);
    return it == sparse.end() ? nullptr : &fields[it->second];
  }
  const FieldPlan* FieldByName(std::string_view key) const {
    auto it = by_name.find(absl::string_view(key.data(), key.size()));
    return it == by_name.end() ? nullptr : &fields[it->second];
  }
};

// Builds and keeps the plans of one descriptor pool. Thread-safe: Get may be
// called from any thread; the first call for a type builds it (and every
// type it reaches) under a lock.
class MessagePlanCache {
 public:
  MessagePlanCache() = default;
  MessagePlanCache(const MessagePlanCache&) = delete;
  MessagePlanCache& operator=(const MessagePlanCache&) = delete;

  const MessagePlan& Get(const google::protobuf::Descriptor* type);
  // Forgets every plan (their descriptors are going away). Not thread-safe:
  // only while the owning registry is being loaded.
  void Clear();

 private:
  MessagePlan* Build(const google::protobuf::Descriptor* type);  // mu_ held
  const EnumPlan* BuildEnum(const google::protobuf::EnumDescriptor* type);  // mu_ held

  std::mutex mu_;
  std::unordered_map<const google::protobuf::Descriptor*, std::unique_ptr<MessagePlan>> plans_;
  std::unordered_map<const google::protobuf::EnumDescriptor*, std::unique_ptr<EnumPlan>> enums_;
};

}  // namespace barrage::agent::grpc_client

#endif  // BARRAGE_AGENT_GRPC_MESSAGE_PLAN_H_
