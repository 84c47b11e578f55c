// Duktape keeps strings as CESU-8: a JS string is UTF-16, and a character
// outside the Basic Multilingual Plane (an emoji) is two surrogate code
// units, each stored as its own 3-byte sequence. Everything outside the
// heap speaks UTF-8, where the same character is one 4-byte sequence; sent
// unconverted, '\uD83D\uDE00' went out as ed a0 bd ed b8 80, which strict
// servers reject as invalid UTF-8. Every string that crosses the heap's
// edge with user data in it (protobuf messages, metadata, tags, logs,
// files, setup data) goes through one of these two functions.
#ifndef BARRAGE_AGENT_JS_CESU8_H_
#define BARRAGE_AGENT_JS_CESU8_H_

#include <string>
#include <string_view>

namespace barrage::agent::js {

// A string taken from the heap, as valid UTF-8: each surrogate pair
// becomes its 4-byte character; a lone surrogate (a JS string may hold
// one) becomes U+FFFD, as Go's (and so k6's) conversion of JS strings does,
// and so does any byte that is not part of valid UTF-8 (a string made from
// a buffer can hold such bytes): whatever leaves the heap can be written to
// JSON, protobuf and terminals. ASCII text costs one scan.
std::string Utf8FromJs(std::string_view cesu8);

// A UTF-8 string for the heap: each 4-byte character becomes its surrogate
// pair, so JS sees length 2 and charCodeAt the surrogates, as in k6.
// Invalid bytes pass unchanged (Duktape keeps them as they are).
std::string Utf8ToJs(std::string_view utf8);

// True when Utf8FromJs / Utf8ToJs would change the text.
bool HasSurrogates(std::string_view cesu8);
bool HasFourByteSequences(std::string_view utf8);

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_CESU8_H_
