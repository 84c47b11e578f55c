// Duktape (the generated copy of Debian's duktape.c, see CMakeLists.txt)
// and, in the same translation unit so that they can read its object
// layout, the few functions of object_access.h. Duktape's single-file
// build keeps its internals static: this is the only place they are seen.
#include "duktape.cc"  // NOLINT: a source file, on purpose

#include "agent/js/duktape/heap.h"
#include "agent/js/duktape/object_access.h"

#include <cstring>

namespace barrage::agent::js {

void SetGcCountdown(duk_context* ctx, int allocations) {
  reinterpret_cast<duk_hthread*>(ctx)->heap->ms_trigger_counter = allocations;
}

namespace {

// fn.prototype when Duktape made it and nothing else holds it (see
// DropUnusedPrototypes), else nullptr.
duk_tval* PristinePrototype(duk_hthread* thr, duk_hobject* fn) {
  duk_heap* heap = thr->heap;
  duk_tval* proto_tv = duk_hobject_find_entry_tval_ptr(heap, fn, DUK_HTHREAD_STRING_PROTOTYPE(thr));
  if (proto_tv == nullptr || !DUK_TVAL_IS_OBJECT(proto_tv)) return nullptr;
  duk_hobject* proto = DUK_TVAL_GET_OBJECT(proto_tv);
  if (DUK_HEAPHDR_GET_REFCOUNT(&proto->hdr) != 1 || DUK_HOBJECT_GET_CLASS_NUMBER(proto) != DUK_HOBJECT_CLASS_OBJECT ||
      DUK_HOBJECT_HAS_ARRAY_PART(proto) ||
      DUK_HOBJECT_GET_PROTOTYPE(heap, proto) != thr->builtins[DUK_BIDX_OBJECT_PROTOTYPE]) {
    return nullptr;
  }
  int keys = 0;
  for (duk_uint_fast32_t i = 0; i < DUK_HOBJECT_GET_ENEXT(proto); ++i) {
    duk_hstring* k = DUK_HOBJECT_E_GET_KEY(heap, proto, i);
    if (k == nullptr) continue;
    if (++keys > 1 || k != DUK_HTHREAD_STRING_CONSTRUCTOR(thr) || DUK_HOBJECT_E_SLOT_IS_ACCESSOR(heap, proto, i)) {
      return nullptr;
    }
    duk_tval* v = DUK_HOBJECT_E_GET_VALUE_TVAL_PTR(heap, proto, i);
    if (!DUK_TVAL_IS_OBJECT(v) || DUK_TVAL_GET_OBJECT(v) != fn) return nullptr;
  }
  return keys == 1 ? proto_tv : nullptr;
}

// Whether fn's file name starts with prefix.
bool FromFile(duk_hthread* thr, duk_hobject* fn, const char* prefix) {
  duk_tval* tv = duk_hobject_find_entry_tval_ptr(thr->heap, fn, DUK_HTHREAD_STRING_FILE_NAME(thr));
  if (tv == nullptr || !DUK_TVAL_IS_STRING(tv)) return false;
  duk_hstring* name = DUK_TVAL_GET_STRING(tv);
  const size_t len = strlen(prefix);
  return DUK_HSTRING_GET_BYTELEN(name) >= len && memcmp(DUK_HSTRING_GET_DATA(name), prefix, len) == 0;
}

}  // namespace

int DropUnusedPrototypes(duk_context* ctx, const char* file_prefix) {
  duk_hthread* thr = reinterpret_cast<duk_hthread*>(ctx);
  duk_heap* heap = thr->heap;
  // The candidates go on the value stack first: dropping a prototype frees
  // objects, which must not happen while walking the heap's object list,
  // and the stack's references keep every candidate alive until its turn.
  duk_idx_t n = 0;
  for (duk_heaphdr* h = heap->heap_allocated; h != nullptr; h = DUK_HEAPHDR_GET_NEXT(heap, h)) {
    if (DUK_HEAPHDR_GET_TYPE(h) == DUK_HTYPE_OBJECT && DUK_HOBJECT_IS_COMPFUNC(reinterpret_cast<duk_hobject*>(h))) ++n;
  }
  duk_require_stack(ctx, n);  // may allocate: before the walk that pushes
  const duk_idx_t base = duk_get_top(ctx);
  for (duk_heaphdr* h = heap->heap_allocated; h != nullptr && duk_get_top(ctx) - base < n;
       h = DUK_HEAPHDR_GET_NEXT(heap, h)) {
    auto* obj = reinterpret_cast<duk_hobject*>(h);
    if (DUK_HEAPHDR_GET_TYPE(h) == DUK_HTYPE_OBJECT && DUK_HOBJECT_IS_COMPFUNC(obj)) duk_push_hobject(thr, obj);
  }
  int dropped = 0;
  for (duk_idx_t i = base; i < duk_get_top(ctx); ++i) {
    if (!FromFile(thr, duk_known_hobject(thr, i), file_prefix)) continue;
    duk_tval* proto_tv = PristinePrototype(thr, duk_known_hobject(thr, i));
    if (proto_tv == nullptr) continue;
    DUK_TVAL_SET_UNDEFINED_UPDREF(thr, proto_tv);  // frees the prototype at once (refcount zero)
    ++dropped;
  }
  duk_set_top(ctx, base);
  return dropped;
}

size_t CountHeapObjects(duk_context* ctx) {
  duk_heap* heap = reinterpret_cast<duk_hthread*>(ctx)->heap;
  size_t n = 0;
  for (duk_heaphdr* h = heap->heap_allocated; h != nullptr; h = DUK_HEAPHDR_GET_NEXT(heap, h)) ++n;
  return n;
}

JsonObjectInfo InspectObjectForJson(duk_context* ctx, duk_idx_t idx) {
  duk_hthread* thr = reinterpret_cast<duk_hthread*>(ctx);
  duk_hobject* obj = duk_require_hobject(thr, idx);
  // A Proxy: its traps decide everything, so the caller asks through them.
  if (DUK_HOBJECT_IS_PROXY(obj)) return JsonObjectInfo{JsonObjectKind::kOther, true};
  JsonObjectInfo info{JsonObjectKind::kOther, false};
  // The raw check calls no getter, as in JSON's fast path.
  info.has_to_json = duk_hobject_hasprop_raw(thr, obj, DUK_HTHREAD_STRING_TO_JSON(thr)) != 0;
  if (DUK_HOBJECT_IS_CALLABLE(obj)) {
    info.kind = JsonObjectKind::kFunction;
    return info;
  }
  if (DUK_HOBJECT_IS_BUFOBJ(obj)) {
    info.kind = JsonObjectKind::kBuffer;
    return info;
  }
  switch (DUK_HOBJECT_GET_CLASS_NUMBER(obj)) {
    case DUK_HOBJECT_CLASS_OBJECT: info.kind = JsonObjectKind::kPlain; break;
    case DUK_HOBJECT_CLASS_ARRAY: info.kind = JsonObjectKind::kArray; break;
    case DUK_HOBJECT_CLASS_NUMBER: info.kind = JsonObjectKind::kNumberObject; break;
    case DUK_HOBJECT_CLASS_STRING: info.kind = JsonObjectKind::kStringObject; break;
    case DUK_HOBJECT_CLASS_BOOLEAN: info.kind = JsonObjectKind::kBooleanObject; break;
    default: break;
  }
  return info;
}

int PushOwnEnumerableEntries(duk_context* ctx, duk_idx_t idx) {
  duk_hthread* thr = reinterpret_cast<duk_hthread*>(ctx);
  duk_hobject* obj = duk_require_hobject(thr, idx);
  if (DUK_HOBJECT_IS_PROXY(obj) || DUK_HOBJECT_HAS_ARRAY_PART(obj) ||
      DUK_HOBJECT_GET_CLASS_NUMBER(obj) != DUK_HOBJECT_CLASS_OBJECT) {
    return -1;
  }
  duk_heap* heap = thr->heap;
  const duk_uint_fast32_t n = DUK_HOBJECT_GET_ENEXT(obj);
  // Room for every entry, before the walks: growing the value stack
  // allocates, and a GC it set off (an emergency one compacts objects)
  // must not move the entries between the count and the pushes.
  duk_require_stack(ctx, static_cast<duk_idx_t>(2 * n + 2));
  int count = 0;
  for (duk_uint_fast32_t i = 0; i < n; ++i) {
    duk_hstring* k = DUK_HOBJECT_E_GET_KEY(heap, obj, i);
    if (k == nullptr || !DUK_HOBJECT_E_SLOT_IS_ENUMERABLE(heap, obj, i) || DUK_HSTRING_HAS_SYMBOL(k)) continue;
    // Array-index keys come first in ES2015 order, getters may change the
    // object: both are duk_enum's business.
    if (DUK_HSTRING_HAS_ARRIDX(k) || DUK_HOBJECT_E_SLOT_IS_ACCESSOR(heap, obj, i)) return -1;
    ++count;
  }
  // Nothing since the count can run code or resize the object: the slots
  // are as counted.
  for (duk_uint_fast32_t i = 0; i < n; ++i) {
    duk_hstring* k = DUK_HOBJECT_E_GET_KEY(heap, obj, i);
    if (k == nullptr || !DUK_HOBJECT_E_SLOT_IS_ENUMERABLE(heap, obj, i) || DUK_HSTRING_HAS_SYMBOL(k)) continue;
    duk_push_hstring(thr, k);
    duk_push_tval(thr, DUK_HOBJECT_E_GET_VALUE_TVAL_PTR(heap, obj, i));
  }
  return count;
}

void PushObjectWithRoom(duk_context* ctx, duk_uint_t n) {
  duk_hthread* thr = reinterpret_cast<duk_hthread*>(ctx);
  duk_push_object(ctx);
  if (n > 0) duk_hobject_resize_entrypart(thr, duk_known_hobject(thr, -1), n);
}

void DefineOwnProperty(duk_context* ctx, duk_idx_t obj, const char* key, duk_size_t len) {
  duk_hthread* thr = reinterpret_cast<duk_hthread*>(ctx);
  obj = duk_require_normalize_index(thr, obj);
  duk_push_lstring(ctx, key, len);
  duk_insert(ctx, -2);  // [ ... key value ]
  duk_xdef_prop_wec(thr, obj);
}

void DefineOwnLiteral(duk_context* ctx, duk_idx_t obj, const char* literal) {
  duk_hthread* thr = reinterpret_cast<duk_hthread*>(ctx);
  obj = duk_require_normalize_index(thr, obj);
  duk_push_literal_raw(ctx, literal, std::strlen(literal));
  duk_insert(ctx, -2);  // [ ... key value ]
  duk_xdef_prop_wec(thr, obj);
}

bool IgnoresArgument(duk_context* ctx, duk_idx_t idx, duk_idx_t n) {
  duk_hthread* thr = reinterpret_cast<duk_hthread*>(ctx);
  duk_hobject* h = duk_get_hobject(thr, idx);
  if (h == nullptr || !DUK_HOBJECT_IS_COMPFUNC(h) || DUK_HOBJECT_HAS_CREATEARGS(h)) return false;
  return reinterpret_cast<duk_hcompfunc*>(h)->nargs <= n;
}

void PushArrayWithRoom(duk_context* ctx, duk_uint_t n) {
  duk_hthread* thr = reinterpret_cast<duk_hthread*>(ctx);
  duk_push_array(ctx);
  duk_hobject* arr = duk_known_hobject(thr, -1);
  if (n > 0 && DUK_HOBJECT_HAS_ARRAY_PART(arr)) {
    duk_hobject_realloc_props(thr, arr, DUK_HOBJECT_GET_ESIZE(arr), n, DUK_HOBJECT_GET_HSIZE(arr), 0);
  }
}

void DefineOwnIndex(duk_context* ctx, duk_idx_t arr, duk_uarridx_t index) {
  duk_hthread* thr = reinterpret_cast<duk_hthread*>(ctx);
  duk_xdef_prop_index_wec(thr, arr, index);
}

}  // namespace barrage::agent::js
