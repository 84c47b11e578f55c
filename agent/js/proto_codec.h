// The direct codec: requests and responses converted between Duktape values
// and the protobuf wire format, with protojson's mapping as k6 gives it to
// scripts (spec §1.15, §1.6 step 7, §1.9) and no JSON text in between.
//
// Why: the JSON path (JSON.stringify, json_codec's JsonToBinary, and back
// through BinaryToJson and JSON.parse) built and parsed every message twice,
// about 16k of the 141k instructions of a unary call (tests/bench/README.md,
// "Direct codec"). Here a request is read from the JS value once, written to
// the wire through the type's MessagePlan, and a response is parsed once and
// pushed as JS values.
//
// It matches the JSON path exactly (tests/agent/js/proto_codec_test.cc
// compares both on generated messages): a request reads as JSON.stringify
// would see it (own enumerable keys in ES2015 order, toJSON honoured,
// Number/String/Boolean objects unboxed, undefined, functions and symbols
// left out, and null in arrays), then as json_codec's parser would take that
// JSON; a response gives what JSON.parse of BinaryToJson's text gives.
// Strings cross as UTF-8 on the wire and CESU-8 in the heap (cesu8.h).
//
// Both functions run on the heap's thread, inside a native call or a
// protected call; plans and registry are only read.
#ifndef BARRAGE_AGENT_JS_PROTO_CODEC_H_
#define BARRAGE_AGENT_JS_PROTO_CODEC_H_

#include <duktape.h>

#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "agent/grpc/message_plan.h"
#include "agent/grpc/proto_registry.h"

namespace barrage::agent::js {

// What a request's NaN and ±Infinity numbers become: invoke sends them as
// the strings "NaN"/"Infinity"/"-Infinity", as k6 v1.2+ does (spec §1.6 step
// 7); Stream.write does not (spec §1.13.3), so JSON's null: the field unset.
// Numbers inside what a toJSON method returned are JSON's null either way.
enum class NonFinite { kAsStrings, kAsNull };

// The wire bytes of the JS value at `idx` as a message of `plan`'s type, a
// type of `registry` (Any's @type is resolved there). The value may be a
// bare primitive for a well-known type with a JSON primitive form.
// Errors:
// - kInvalidArgument: the value does not map to the type, with json_codec's
//   reason (`unknown field "x" in pkg.Msg`, `invalid value for int32 field
//   "n": "a" (invalid number)`); callers add k6's prefix ("unable to
//   serialise request object to protocol buffer: ").
// - kFailedPrecondition: JSON.stringify itself would fail: "cyclic reference
//   to an object found", or the text of what a getter or toJSON threw.
// The value stack is left as it was. User code (getters, toJSON) may run.
[[nodiscard]] absl::StatusOr<std::string> EncodeMessage(duk_context* ctx, duk_idx_t idx,
                                                        const grpc_client::ProtoRegistry& registry,
                                                        const grpc_client::MessagePlan& plan, NonFinite non_finite);

// Parses `bytes` as a message of `plan`'s type and pushes it as k6 gives it
// to a script (the value JSON.parse(BinaryToJson(...)) would give): JSON
// names in declaration order, defaults for fields without presence, null
// for unset messages and proto2 scalars, proto3 optional and oneof members
// absent when unset, 64-bit integers as strings, enums by name, bytes as
// base64, well-known types in their JSON forms, unknown fields dropped.
// Empty bytes give the all-defaults message (Response.message on a non-OK
// status). On error nothing is pushed: kInvalidArgument when the bytes do
// not parse as the type ("cannot parse the bytes as pkg.Msg") or hold an
// invalid Timestamp/Duration, kNotFound for an Any of a type the registry
// does not know.
[[nodiscard]] absl::Status PushDecodedMessage(duk_context* ctx, const grpc_client::ProtoRegistry& registry,
                                              const grpc_client::MessagePlan& plan, std::string_view bytes);

// The text JS gives a number (Number.prototype.toString, which is also what
// JSON.stringify writes for finite numbers): "1e+21", "1.5", "-0" as "0".
// Exposed for the tests.
std::string JsNumberText(double d);

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_PROTO_CODEC_H_
