#include "agent/grpc/message_plan.h"

#include <algorithm>
#include <cstring>

#include "google/protobuf/descriptor.pb.h"

namespace barrage::agent::grpc_client {
namespace {

namespace pb = ::google::protobuf;
using pb::FieldDescriptor;
using WFL = pb::internal::WireFormatLite;

WellKnownType WellKnownKind(const pb::Descriptor* type) {
  if (type->file()->package() != "google.protobuf") return WellKnownType::kNone;
  const std::string& n = type->name();
  if (n == "Any") return WellKnownType::kAny;
  if (n == "Timestamp") return WellKnownType::kTimestamp;
  if (n == "Duration") return WellKnownType::kDuration;
  if (n == "Struct") return WellKnownType::kStruct;
  if (n == "Value") return WellKnownType::kValue;
  if (n == "ListValue") return WellKnownType::kListValue;
  if (n == "Empty") return WellKnownType::kEmpty;
  if (n == "FieldMask") return WellKnownType::kFieldMask;
  if (n == "DoubleValue" || n == "FloatValue" || n == "Int64Value" || n == "UInt64Value" || n == "Int32Value" ||
      n == "UInt32Value" || n == "BoolValue" || n == "StringValue" || n == "BytesValue") {
    return WellKnownType::kWrapper;
  }
  return WellKnownType::kNone;
}

// The default in the codec's value encoding: signed integers sign-extended,
// floats as their bits.
uint64_t DefaultBits(const FieldDescriptor* f) {
  switch (f->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: return static_cast<uint64_t>(static_cast<int64_t>(f->default_value_int32()));
    case FieldDescriptor::CPPTYPE_INT64: return static_cast<uint64_t>(f->default_value_int64());
    case FieldDescriptor::CPPTYPE_UINT32: return f->default_value_uint32();
    case FieldDescriptor::CPPTYPE_UINT64: return f->default_value_uint64();
    case FieldDescriptor::CPPTYPE_BOOL: return f->default_value_bool() ? 1 : 0;
    case FieldDescriptor::CPPTYPE_ENUM:
      return static_cast<uint64_t>(static_cast<int64_t>(f->default_value_enum()->number()));
    case FieldDescriptor::CPPTYPE_FLOAT: {
      const float v = f->default_value_float();
      uint32_t bits;
      std::memcpy(&bits, &v, sizeof(bits));
      return bits;
    }
    case FieldDescriptor::CPPTYPE_DOUBLE: {
      const double v = f->default_value_double();
      uint64_t bits;
      std::memcpy(&bits, &v, sizeof(bits));
      return bits;
    }
    default: return 0;
  }
}

}  // namespace

const std::string* EnumPlan::NameOf(int32_t number) const {
  const pb::EnumValueDescriptor* v = descriptor->FindValueByNumber(number);
  return v == nullptr ? nullptr : &v->name();
}

const MessagePlan& MessagePlanCache::Get(const pb::Descriptor* type) {
  std::lock_guard<std::mutex> lock(mu_);
  if (auto it = plans_.find(type); it != plans_.end()) return *it->second;
  return *Build(type);
}

void MessagePlanCache::Clear() {
  plans_.clear();
  enums_.clear();
}

const EnumPlan* MessagePlanCache::BuildEnum(const pb::EnumDescriptor* type) {
  auto& slot = enums_[type];
  if (slot) return slot.get();
  slot = std::make_unique<EnumPlan>();
  slot->descriptor = type;
  slot->null_value = type->full_name() == "google.protobuf.NullValue";
  for (int i = 0; i < type->value_count(); ++i) slot->by_name.emplace(type->value(i)->name(), type->value(i)->number());
  return slot.get();
}

MessagePlan* MessagePlanCache::Build(const pb::Descriptor* type) {
  // Registered before its fields are filled in, so a recursive type finds
  // itself; every plan is complete before the lock is released.
  auto& slot = plans_[type];
  slot = std::make_unique<MessagePlan>();
  MessagePlan* plan = slot.get();
  plan->descriptor = type;
  plan->well_known = WellKnownKind(type);
  plan->map_entry = type->options().map_entry();
  const bool names_errors = type->file()->package() != "google.protobuf";
  for (int i = 0; i < type->oneof_decl_count(); ++i) plan->oneof_names.push_back(type->oneof_decl(i)->full_name());
  int max_number = 0;
  plan->fields.resize(type->field_count());
  for (int i = 0; i < type->field_count(); ++i) {
    const FieldDescriptor* f = type->field(i);
    FieldPlan& p = plan->fields[i];
    p.descriptor = f;
    p.type = f->type();
    p.number = f->number();
    p.index = i;
    p.wire_type = WFL::WireTypeForFieldType(static_cast<WFL::FieldType>(f->type()));
    p.tag = WFL::MakeTag(f->number(), p.wire_type);
    p.repeated = f->is_repeated();
    p.map = f->is_map();
    p.packable = f->is_packable();
    p.packed = f->is_packed();
    const bool proto2 = f->file()->syntax() == pb::FileDescriptor::SYNTAX_PROTO2;
    const bool is_message = f->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE;
    p.implicit_presence = !p.repeated && !is_message && !f->has_presence();
    p.null_when_unset = !p.repeated && (is_message || proto2);
    p.oneof = f->containing_oneof() != nullptr ? f->containing_oneof()->index() : -1;
    p.strict_utf8 = f->type() == FieldDescriptor::TYPE_STRING && f->file()->syntax() == pb::FileDescriptor::SYNTAX_PROTO3;
    p.names_errors = names_errors;
    p.default_bits = DefaultBits(f);
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_STRING) p.default_string = f->default_value_string();
    p.json_name = f->json_name();
    p.name = f->name();
    if (f->cpp_type() == FieldDescriptor::CPPTYPE_ENUM) {
      p.enumeration = BuildEnum(f->enum_type());
      // protobuf treats a proto2 field's enum as closed: a number the enum
      // does not name goes to the unknown fields, not into the value.
      p.closed_enum = proto2;
      p.null_is_value = p.enumeration->null_value;
    }
    if (is_message) {
      auto it = plans_.find(f->message_type());
      p.message = it != plans_.end() ? it->second.get() : Build(f->message_type());
      p.null_is_value = f->message_type()->full_name() == "google.protobuf.Value";
    }
    max_number = std::max(max_number, p.number);
  }
  plan->number_order.resize(plan->fields.size());
  for (size_t i = 0; i < plan->fields.size(); ++i) plan->number_order[i] = static_cast<int>(i);
  std::sort(plan->number_order.begin(), plan->number_order.end(),
            [plan](int a, int b) { return plan->fields[a].number < plan->fields[b].number; });
  // Numbers up to a few times the field count get a table; the rest a map.
  if (max_number <= std::max<int>(64, 4 * static_cast<int>(plan->fields.size())) && plan->fields.size() < 32000) {
    plan->dense.assign(max_number + 1, 0);
    for (const FieldPlan& p : plan->fields) plan->dense[p.number] = static_cast<int16_t>(p.index + 1);
  } else {
    for (const FieldPlan& p : plan->fields) plan->sparse.emplace(p.number, p.index);
  }
  for (const FieldPlan& p : plan->fields) {
    plan->by_name.emplace(p.json_name, p.index);
    plan->by_name.emplace(p.name, p.index);
  }
  return plan;
}

}  // namespace barrage::agent::grpc_client
