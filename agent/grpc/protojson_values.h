// The text forms protojson gives scalars and well-known types (spec §1.15),
// shared by the JSON codec (json_codec.h) and the direct codec
// (agent/js/proto_codec.h) so that both accept and print exactly the same.
// Pure functions, thread-safe.
#ifndef BARRAGE_AGENT_GRPC_PROTOJSON_VALUES_H_
#define BARRAGE_AGENT_GRPC_PROTOJSON_VALUES_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace barrage::agent::grpc_client {

inline constexpr int64_t kMinTimestampSeconds = -62135596800;  // 0001-01-01T00:00:00Z
inline constexpr int64_t kMaxTimestampSeconds = 253402300799;  // 9999-12-31T23:59:59Z
inline constexpr int64_t kMaxDurationSeconds = 315576000000;   // 10000 years, as protobuf says

// The JSON number grammar, on its own: numeric strings ("42") must pass the
// same test as numbers.
bool IsJsonNumber(std::string_view s);

// The integer a JSON number text stands for, exactly: "1e2" is 100, "1.0"
// is 1, "1.5" is an error, as Go's protojson decides. kInvalidArgument
// ("invalid number", "not an integer") or kOutOfRange ("out of range").
absl::Status ParseJsonInteger(std::string_view text, bool* negative, uint64_t* magnitude);

// Go's protojson float format (from encoding/json): shortest round-trip
// digits, exponent form only below 1e-6 or from 1e21 on, "e-07" as "e-7";
// NaN and the infinities as the strings "NaN", "Infinity", "-Infinity"
// (with their quotes).
void AppendJsonFloat(float v, std::string* out);
void AppendJsonFloat(double v, std::string* out);

// "2024-05-01T10:00:00.500Z" (no quotes). kInvalidArgument naming the
// values when they are out of protobuf's range.
absl::Status FormatTimestamp(int64_t seconds, int32_t nanos, std::string* out);
// "-1.500s" (no quotes), the same way.
absl::Status FormatDuration(int64_t seconds, int32_t nanos, std::string* out);

// RFC 3339 text to seconds and nanos; false with the reason in *why.
bool ParseTimestamp(std::string_view text, int64_t* seconds, int32_t* nanos, std::string* why);
// "1.5s", "-0.000000001s"; false with the reason in *why.
bool ParseDuration(std::string_view text, int64_t* seconds, int32_t* nanos, std::string* why);

// A FieldMask path between proto form ("a.b_c") and JSON form ("a.bC").
std::string FieldMaskPathToJson(std::string_view path);
// False when the JSON path has a '_' (it must be lowerCamelCase).
bool FieldMaskPathFromJson(std::string_view path, std::string* out);

}  // namespace barrage::agent::grpc_client

#endif  // BARRAGE_AGENT_GRPC_PROTOJSON_VALUES_H_
