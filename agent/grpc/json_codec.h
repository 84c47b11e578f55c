// JSON text <-> protobuf wire bytes for dynamic message types, with the rules
// k6 gets from Go's protojson (EmitUnpopulated: true, UseProtoNames: false),
// spec §1.15. It knows nothing of JavaScript.
//
// Requests and responses no longer go through JSON text: the direct codec
// (agent/js/proto_codec.h) converts JS values and wire bytes. What is left
// here: Response.error's google.rpc.Status details (StatusErrorJson), and
// the reference the direct codec is tested against (JsonToBinary after
// JSON.stringify, BinaryToJson before JSON.parse give what it must give;
// tests/agent/js/proto_codec_test.cc, tests/fuzz/codec_fuzz.cc).
//
// Why hand-written and not protobuf's util/json_util: k6's output differs
// from protobuf C++'s (unset message fields and proto2 scalars are null, not
// left out; proto3 optional and oneof members are left out), and a direct
// walk over the parsed message's reflection is cheaper than printing with a
// resolver and patching.
//
// Every function is thread-safe and may run concurrently on one registry
// (it must be done loading).
#ifndef BARRAGE_AGENT_GRPC_JSON_CODEC_H_
#define BARRAGE_AGENT_GRPC_JSON_CODEC_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "google/protobuf/descriptor.h"

namespace barrage::agent::grpc_client {

class ProtoRegistry;

// Parses `json` as a message of `type` (a type of `registry`) and returns its
// wire bytes. Accepts JSON names and proto names, integers as numbers or
// strings, "NaN"/"Infinity"/"-Infinity", enums by name or number, base64
// (standard or URL-safe, padding optional), maps, every well-known type
// (Any through the registry) and a bare primitive for a wrapper type.
// kInvalidArgument with the reason (an unknown field, a bad value, with the
// field's name); the caller adds "unable to serialise request object to
// protocol buffer: ".
[[nodiscard]] absl::StatusOr<std::string> JsonToBinary(const ProtoRegistry& registry,
                                                       const google::protobuf::Descriptor* type,
                                                       std::string_view json);

// The message in `bytes` as k6 gives it to a script: JSON names in
// declaration order, every field without presence present with its default,
// unset singular messages and proto2 scalars null, unset proto3 optional and
// oneof members absent, 64-bit integers as strings, enums by name, bytes as
// padded standard base64, well-known types in their JSON forms. Unknown
// fields are dropped. kInvalidArgument when the bytes do not parse, or an Any
// holds a type the registry does not know.
[[nodiscard]] absl::StatusOr<std::string> BinaryToJson(const ProtoRegistry& registry,
                                                       const google::protobuf::Descriptor* type,
                                                       std::string_view bytes);

// The all-defaults message of `type`: Response.message on a non-OK status
// (spec §1.9), e.g. {"name":"","location":null}.
[[nodiscard]] absl::StatusOr<std::string> DefaultJson(const ProtoRegistry& registry,
                                                      const google::protobuf::Descriptor* type);

// Response.error for a non-OK status: {"code":…,"message":…,"details":[…]}.
// `status_details_bin` is the grpc-status-details-bin trailer (a serialized
// google.rpc.Status; may be empty). Details are Any objects with "@type";
// one the registry cannot resolve is left out (spec §5: k6 returns {} for
// the whole error instead). Code and message come from the call's status.
std::string StatusErrorJson(const ProtoRegistry& registry, int code, std::string_view message,
                            std::string_view status_details_bin);

// `s` as a JSON string literal, quotes included.
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace barrage::agent::grpc_client

#endif  // BARRAGE_AGENT_GRPC_JSON_CODEC_H_
