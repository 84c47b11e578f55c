// k6/data (k6's internal/js/modules/k6/data): SharedArray. The array is
// built once per process by the first VU that names it (its function runs
// there and only there), kept as JSON text outside every heap
// (shared_arrays.h), and read by each VU through a Proxy that decodes and
// deep-freezes an element on each access, as k6's dynamic array does. A VU
// holds the Proxy and its handler, a few hundred bytes, whatever the size
// of the array (tests/bench/shared_array.sh measures it).
#include "agent/js/runtime.h"
#include "agent/js/values.h"

namespace barrage::agent::js {
namespace {

// open(name, fn) -> id: the array of that name, fn() building it if no VU
// has. A raw native rather than Native<>: an exception of fn is rethrown
// as it is (its stack names the user's line), after every C++ object here
// is gone.
duk_ret_t OpenNative(duk_context* ctx) {
  Runtime& rt = Runtime::From(ctx);
  bool js_error = false;
  std::string error;
  int id = -1;
  {
    duk_size_t name_len = 0;
    const char* name_ptr = duk_safe_to_lstring(ctx, 0, &name_len);
    const std::string name(name_ptr, name_len);
    absl::StatusOr<std::shared_ptr<const SharedArrayData>> array = rt.shared_arrays().GetOrBuild(
        name, [ctx, &js_error]() -> absl::StatusOr<std::shared_ptr<const SharedArrayData>> {
          duk_dup(ctx, 1);
          if (duk_pcall(ctx, 0) != DUK_EXEC_SUCCESS) {
            js_error = true;  // the error stays on the stack for the rethrow
            return absl::AbortedError("the function threw");
          }
          if (!duk_is_array(ctx, -1)) {
            duk_pop(ctx);
            return absl::InvalidArgumentError("only arrays can be made into SharedArray");
          }
          auto data = std::make_shared<SharedArrayData>();
          const duk_size_t n = duk_get_length(ctx, -1);
          for (duk_size_t i = 0; i < n; ++i) {
            duk_get_prop_index(ctx, -1, static_cast<duk_uarridx_t>(i));
            // JSON.stringify, as k6 stores each element; undefined (a
            // function, a hole) is kept as "" and reads back as undefined.
            absl::StatusOr<std::string> json = SafeJsonEncode(ctx, -1);
            duk_pop(ctx);
            if (!json.ok()) {
              duk_pop(ctx);
              return json.status();
            }
            data->Add(*json);
          }
          duk_pop(ctx);
          data->ShrinkToFit();
          return data;
        });
    if (array.ok()) {
      id = rt.HoldSharedArray(*std::move(array));
    } else if (!js_error) {
      error = std::string(array.status().message());
    }
  }
  if (js_error) return duk_throw(ctx);
  if (id < 0) {
    duk_push_error_object(ctx, DUK_ERR_ERROR, "%s", error.c_str());
    return duk_throw(ctx);
  }
  duk_push_int(ctx, id);
  return 1;
}

const SharedArrayData* ArrayAt(duk_context* ctx, Runtime& rt) {
  return rt.SharedArrayAt(duk_get_int_default(ctx, 0, -1));
}

// length(id)
absl::StatusOr<int> LengthImpl(duk_context* ctx, Runtime& rt) {
  const SharedArrayData* array = ArrayAt(ctx, rt);
  if (array == nullptr) return absl::InvalidArgumentError("TypeError: not a SharedArray");
  duk_push_number(ctx, static_cast<double>(array->size()));
  return 1;
}

// get(id, index) -> the element decoded (not yet frozen), or undefined.
absl::StatusOr<int> GetImpl(duk_context* ctx, Runtime& rt) {
  const SharedArrayData* array = ArrayAt(ctx, rt);
  if (array == nullptr) return absl::InvalidArgumentError("TypeError: not a SharedArray");
  const double index = duk_get_number_default(ctx, 1, -1);
  if (!(index >= 0) || index >= static_cast<double>(array->size())) return 0;
  const std::string_view json = array->at(static_cast<size_t>(index));
  if (json.empty()) return 0;
  absl::Status st = PushJson(ctx, json);
  if (!st.ok()) return st;
  return 1;
}

constexpr char kDataJs[] = R"JS(
(function (b) {
  var d = b.data;
  function isIndex(k) { return typeof k === 'number' || (typeof k === 'string' && /^(0|[1-9][0-9]*)$/.test(k)); }
  // k6 freezes each element it hands out, deeply, so that no VU can change
  // what it reads (it is decoded afresh on every access anyway).
  function deepFreeze(v) {
    if (v !== null && typeof v === 'object' && !Object.isFrozen(v)) {
      Object.freeze(v);
      var keys = Object.keys(v);
      for (var i = 0; i < keys.length; i++) deepFreeze(v[keys[i]]);
    }
    return v;
  }
  function SharedArray(name, fn) {
    if (!(this instanceof SharedArray)) throw new TypeError("Class constructor SharedArray cannot be invoked without 'new'");
    if (!b.inInit()) throw new Error('new SharedArray must be called in the init context');
    name = String(name);
    if (name === '') throw new Error("empty name provided to SharedArray's constructor");
    if (typeof fn === 'function' && fn.constructor && fn.constructor.name === 'AsyncFunction') {
      throw new Error('SharedArray constructor does not support async functions as second argument');
    }
    if (typeof fn !== 'function') throw new Error("a function is expected as the second argument of SharedArray's constructor");
    var id = d.open(name, fn), len = d.length(id);
    function inRange(k) { var i = +k; return i >= 0 && i < len && i === Math.floor(i); }
    // The target gives the array's prototype (map, forEach, slice,
    // Symbol.iterator, Array.isArray) and nothing else.
    return new Proxy([], {
      get: function (t, k) {
        if (isIndex(k)) return inRange(k) ? deepFreeze(d.get(id, +k)) : undefined;
        if (k === 'length') return len;
        return t[k];
      },
      has: function (t, k) { return isIndex(k) ? inRange(k) : k in t; },
      set: function (t, k) {
        if (isIndex(k)) throw new TypeError('SharedArray is immutable');
        throw new TypeError('Cannot set property "' + String(k) + '" on a dynamic array');
      },
      deleteProperty: function () { throw new TypeError('SharedArray is immutable'); },
      ownKeys: function () {
        var keys = [];
        for (var i = 0; i < len; i++) keys.push(String(i));
        return keys;
      }
    });
  }
  b.modules['k6/data'] = { SharedArray: SharedArray };
})
)JS";

}  // namespace

void InstallDataModule(duk_context* ctx) {
  // [.. __b]
  duk_push_object(ctx);
  duk_push_c_function(ctx, OpenNative, 2);
  duk_put_prop_string(ctx, -2, "open");
  PutFunction(ctx, -1, "length", Native<LengthImpl>, 1);
  PutFunction(ctx, -1, "get", Native<GetImpl>, 2);
  duk_put_prop_string(ctx, -2, "data");
  RunEmbeddedInstaller(ctx, "barrage:k6/data.js", kDataJs);
}

}  // namespace barrage::agent::js
