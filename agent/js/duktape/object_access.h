// What JSON.stringify reads from an object, read the way its fast path
// does: straight from Duktape's object layout, for the direct codec
// (agent/js/proto_codec.cc). Duktape's public API has no cheap way to list
// an object's own keys: duk_enum builds an enumerator object and costs
// about 5k instructions for a one-key request, more than the rest of its
// encoding. These functions live in the translation unit that compiles
// Duktape itself (duktape_unit.cc), where its internals are visible.
//
// Same thread rules as every Duktape call: the heap's thread only.
#ifndef BARRAGE_AGENT_JS_DUKTAPE_OBJECT_ACCESS_H_
#define BARRAGE_AGENT_JS_DUKTAPE_OBJECT_ACCESS_H_

#include <duktape.h>

namespace barrage::agent::js {

// How JSON.stringify treats an object, by its class.
enum class JsonObjectKind {
  kPlain,          // serialised by its own enumerable keys (Object class)
  kArray,
  kNumberObject,   // unboxed with ToNumber
  kStringObject,   // unboxed with ToString
  kBooleanObject,  // unboxed to its value
  kFunction,       // left out (undefined)
  kBuffer,         // a buffer object: serialised by its own rules
  kOther,          // any other class (Proxy, Date, Error, Map, arguments…): its keys, via duk_enum
};

struct JsonObjectInfo {
  JsonObjectKind kind;
  // A toJSON property may exist on the object or its prototypes (always
  // for a Proxy): the caller reads it with duk_get_prop, as it may be a
  // getter or a trap.
  bool has_to_json;
};

// The value at idx must be an object.
JsonObjectInfo InspectObjectForJson(duk_context* ctx, duk_idx_t idx);

// For a kPlain object: pushes key and value for each own enumerable string
// key in property order and returns the number of pairs. Returns -1 and
// pushes nothing when the object is not that simple (a Proxy, array-index
// keys, which ES2015 order sorts first, an accessor, an array part): the
// caller then uses duk_enum, which handles all of those.
int PushOwnEnumerableEntries(duk_context* ctx, duk_idx_t idx);

// Building objects the way JSON.parse builds them, for decoded responses:
// room for the properties made up front, and each property defined as an
// own data property (writable, enumerable, configurable) without the
// [[Set]] path's prototype walk; so "__proto__" is an ordinary key.
//
// Pushes a new object (Object.prototype) with room for n properties.
void PushObjectWithRoom(duk_context* ctx, duk_uint_t n);
// obj[key] = the value on top, which is popped.
void DefineOwnProperty(duk_context* ctx, duk_idx_t obj, const char* key, duk_size_t len);
// The same with a key that is a string literal (static, never changed):
// Duktape's literal cache then finds its interned string by address.
void DefineOwnLiteral(duk_context* ctx, duk_idx_t obj, const char* literal);
// Whether the value at idx is a compiled (ECMAScript) function that cannot
// see its argument number n (0-based): it declares at most n formals and
// neither uses `arguments` nor may call eval (Duktape's CREATEARGS flag), so
// Duktape drops that argument when it sets up the call. False for anything
// else (native, bound or lightweight functions, non-functions). Lets a
// caller skip building an argument nobody can read.
bool IgnoresArgument(duk_context* ctx, duk_idx_t idx, duk_idx_t n);

// Pushes a new array with room for n elements.
void PushArrayWithRoom(duk_context* ctx, duk_uint_t n);
// arr[index] = the value on top, which is popped. The caller sets the
// array's length when done (duk_set_length), as JSON.parse does.
void DefineOwnIndex(duk_context* ctx, duk_idx_t arr, duk_uarridx_t index);

}  // namespace barrage::agent::js

#endif  // BARRAGE_AGENT_JS_DUKTAPE_OBJECT_ACCESS_H_
