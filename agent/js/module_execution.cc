// k6/execution (spec §3.3): vu, scenario, instance and test. Every property
// is a getter that reads live values from the engine through one native,
// exec.info(); vu.tags is a Proxy over the VU's own tag set, so a tag the
// script sets is on every later sample of that VU in the scenario.
#include "absl/strings/str_cat.h"
#include "agent/js/runtime.h"
#include "agent/js/values.h"
#include "common/log.h"

namespace barrage::agent::js {
namespace {

void PutNumber(duk_context* ctx, const char* name, double v) {
  duk_push_number(ctx, v);
  duk_put_prop_string(ctx, -2, name);
}

absl::StatusOr<int> InfoImpl(duk_context* ctx, Runtime& rt) {
  const ExecutionInfo info = rt.in_init() ? ExecutionInfo{} : rt.host().Execution();
  duk_push_object(ctx);
  duk_push_boolean(ctx, rt.in_init());
  duk_put_prop_string(ctx, -2, "init");
  duk_push_boolean(ctx, info.in_scenario);
  duk_put_prop_string(ctx, -2, "inScenario");
  PutNumber(ctx, "vu", static_cast<double>(rt.vu_id()));
  PutNumber(ctx, "iter", static_cast<double>(rt.iteration()));
  PutNumber(ctx, "vuIdInTest", static_cast<double>(info.vu_id_in_test));
  PutNumber(ctx, "vuIterInScenario", static_cast<double>(info.vu_iteration_in_scenario));
  duk_push_string(ctx, info.scenario_name.c_str());
  duk_put_prop_string(ctx, -2, "name");
  duk_push_string(ctx, info.executor.c_str());
  duk_put_prop_string(ctx, -2, "executor");
  PutNumber(ctx, "startTime", info.scenario_start_unix_ms);
  PutNumber(ctx, "progress", info.scenario_progress);
  PutNumber(ctx, "iterInInstance", static_cast<double>(info.scenario_iteration_in_instance));
  PutNumber(ctx, "iterInTest", static_cast<double>(info.scenario_iteration_in_test));
  PutNumber(ctx, "iterationsCompleted", static_cast<double>(info.iterations_completed));
  PutNumber(ctx, "iterationsInterrupted", static_cast<double>(info.iterations_interrupted));
  PutNumber(ctx, "vusActive", static_cast<double>(info.vus_active));
  PutNumber(ctx, "vusInitialized", static_cast<double>(info.vus_initialized));
  PutNumber(ctx, "currentTestRunDuration", info.test_run_duration_ms);
  return 1;
}

absl::StatusOr<int> AbortImpl(duk_context* ctx, Runtime& rt) {
  std::string reason = "test aborted";
  if (duk_is_string(ctx, 0)) absl::StrAppend(&reason, ": ", GetUtf8(ctx, 0));
  rt.host().AbortTest(reason);
  // Interrupt the script at once: the error ends the iteration (or init),
  // and the engine, told above, stops the test.
  return absl::AbortedError(reason);
}

absl::StatusOr<int> FailImpl(duk_context* ctx, Runtime& rt) {
  std::string message = "test marked as failed";
  if (!duk_is_undefined(ctx, 0)) absl::StrAppend(&message, ": ", GetUtf8(ctx, 0));
  barrage::Log(Severity::kError, message);
  rt.host().FailTest();
  return 0;
}

// tag(name) -> string or undefined
absl::StatusOr<int> TagImpl(duk_context* ctx, Runtime& rt) {
  const metrics::TagSet& tags = rt.vu_tags();
  auto it = tags.find(GetUtf8(ctx, 0));
  if (it == tags.end()) return 0;
  PushUtf8(ctx, it->second);
  return 1;
}

// setTag(name, value): strings, numbers and booleans, as k6 allows.
absl::StatusOr<int> SetTagImpl(duk_context* ctx, Runtime& rt) {
  const std::string key = GetUtf8(ctx, 0);
  if (!duk_is_string(ctx, 1) && !duk_is_number(ctx, 1) && !duk_is_boolean(ctx, 1)) {
    return absl::InvalidArgumentError(absl::StrCat("TypeError: invalid value for the VU tag '", key,
                                                   "': only strings, numbers and booleans are allowed"));
  }
  rt.SetVuTag(key, GetUtf8(ctx, 1));
  return 0;
}

absl::StatusOr<int> DeleteTagImpl(duk_context* ctx, Runtime& rt) {
  rt.DeleteVuTag(GetUtf8(ctx, 0));
  return 0;
}

absl::StatusOr<int> TagKeysImpl(duk_context* ctx, Runtime& rt) {
  duk_push_array(ctx);
  duk_uarridx_t i = 0;
  for (const auto& [k, v] : rt.vu_tags()) {
    PushUtf8(ctx, k);
    duk_put_prop_index(ctx, -2, i++);
  }
  return 1;
}

absl::StatusOr<int> OptionsJsonImpl(duk_context* ctx, Runtime& rt) {
  const std::string& json = rt.config().test_options_json;
  duk_push_lstring(ctx, json.data(), json.size());
  return 1;
}

constexpr char kExecutionJs[] = R"JS(
(function (b) {
  var x = b.exec;
  function info(what) {
    var i = x.info();
    if (i.init) throw new Error('getting ' + what + ' information in the init context is not supported');
    return i;
  }
  function inScenario() {
    var i = info('scenario');
    if (!i.inScenario) throw new Error('getting scenario information outside of a scenario (in setup or teardown) is not supported');
    return i;
  }
  function getters(obj, table) {
    Object.keys(table).forEach(function (name) {
      Object.defineProperty(obj, name, { get: table[name], enumerable: true });
    });
    return obj;
  }
  function liveMap(what, get, set, del, keys) {
    return new Proxy({}, {
      get: function (t, k) { info('VU'); return typeof k === 'string' ? get(k) : undefined; },
      set: function (t, k, v) { info('VU'); set(String(k), v); return true; },
      deleteProperty: function (t, k) { info('VU'); del(String(k)); return true; },
      has: function (t, k) { info('VU'); return get(String(k)) !== undefined; },
      ownKeys: function () { info('VU'); return keys(); }
    });
  }
  var tags = liveMap('tags', x.tag, x.setTag, x.delTag, x.tagKeys);
  // Metadata is kept per VU for the script to read back; Barrage's outputs
  // do not carry it yet (TODO(#6): --out json).
  var metadata = {};
  var metadataMap = liveMap('metadata',
    function (k) { return Object.prototype.hasOwnProperty.call(metadata, k) ? metadata[k] : undefined; },
    function (k, v) {
      if (typeof v !== 'string' && typeof v !== 'number' && typeof v !== 'boolean') {
        throw new TypeError("invalid value for the VU metadata '" + k + "': only strings, numbers and booleans are allowed");
      }
      metadata[k] = String(v);
    },
    function (k) { delete metadata[k]; },
    function () { return Object.keys(metadata); });
  var vu = getters({}, {
    idInInstance: function () { return info('VU').vu; },
    idInTest: function () { return info('VU').vuIdInTest; },
    iterationInInstance: function () { return info('VU').iter; },
    iterationInScenario: function () { return inScenario().vuIterInScenario; },
    tags: function () { info('VU'); return tags; }
  });
  vu.metrics = getters({}, {
    tags: function () { info('VU'); return tags; },
    metadata: function () { info('VU'); return metadataMap; }
  });
  var scenario = getters({}, {
    name: function () { return inScenario().name; },
    executor: function () { return inScenario().executor; },
    startTime: function () { return inScenario().startTime; },
    progress: function () { return inScenario().progress; },
    iterationInInstance: function () { return inScenario().iterInInstance; },
    iterationInTest: function () { return inScenario().iterInTest; }
  });
  var instance = getters({}, {
    iterationsCompleted: function () { return info('instance').iterationsCompleted; },
    iterationsInterrupted: function () { return info('instance').iterationsInterrupted; },
    vusActive: function () { return info('instance').vusActive; },
    vusInitialized: function () { return info('instance').vusInitialized; },
    currentTestRunDuration: function () { return info('instance').currentTestRunDuration; }
  });
  function deepFreeze(o) {
    if (o !== null && typeof o === 'object') {
      Object.keys(o).forEach(function (k) { deepFreeze(o[k]); });
      Object.freeze(o);
    }
    return o;
  }
  var options;
  var test = getters({}, {
    options: function () {
      info('test options');
      if (options === undefined) options = deepFreeze(JSON.parse(x.optionsJson()));
      return options;
    }
  });
  test.abort = function (msg) { x.abort(msg); };
  test.fail = function (msg) {
    if (x.info().init) throw new Error('test.fail() is only available in the VU context');
    x.fail(msg);
  };
  b.modules['k6/execution'] = { vu: vu, scenario: scenario, instance: instance, test: test };
})
)JS";

}  // namespace

void InstallExecutionModule(duk_context* ctx) {
  // [.. __b]
  duk_push_object(ctx);
  PutFunction(ctx, -1, "info", Native<InfoImpl>, 0);
  PutFunction(ctx, -1, "abort", Native<AbortImpl>, 1);
  PutFunction(ctx, -1, "fail", Native<FailImpl>, 1);
  PutFunction(ctx, -1, "tag", Native<TagImpl>, 1);
  PutFunction(ctx, -1, "setTag", Native<SetTagImpl>, 2);
  PutFunction(ctx, -1, "delTag", Native<DeleteTagImpl>, 1);
  PutFunction(ctx, -1, "tagKeys", Native<TagKeysImpl>, 0);
  PutFunction(ctx, -1, "optionsJson", Native<OptionsJsonImpl>, 0);
  duk_put_prop_string(ctx, -2, "exec");
  RunEmbeddedInstaller(ctx, "barrage:k6/execution.js", kExecutionJs);
}

}  // namespace barrage::agent::js
