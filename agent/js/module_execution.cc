// k6/execution: the parts a local run needs (vu, scenario, instance, test).
// The getters read live values through one native, exec.info().
#include "absl/strings/str_cat.h"
#include "agent/js/runtime.h"
#include "agent/js/values.h"

namespace barrage::agent::js {
namespace {

absl::StatusOr<int> InfoImpl(duk_context* ctx, Runtime& rt) {
  duk_push_object(ctx);
  duk_push_number(ctx, static_cast<double>(rt.vu_id()));
  duk_put_prop_string(ctx, -2, "vu");
  duk_push_number(ctx, static_cast<double>(rt.iteration()));
  duk_put_prop_string(ctx, -2, "iter");
  duk_push_boolean(ctx, rt.in_init());
  duk_put_prop_string(ctx, -2, "init");
  return 1;
}

absl::StatusOr<int> AbortImpl(duk_context* ctx, Runtime& rt) {
  std::string reason = "test aborted";
  if (duk_is_string(ctx, 0)) absl::StrAppend(&reason, ": ", duk_get_string(ctx, 0));
  rt.host().AbortTest(reason);
  // Interrupt the script at once: the error ends the iteration (or init),
  // and the engine, told above, stops the test.
  return absl::AbortedError(reason);
}

constexpr char kExecutionJs[] = R"JS(
(function (b) {
  function vuOnly(what) { if (b.exec.info().init) throw new Error('getting ' + what + ' information in the init context is not supported'); }
  var scenario = {};
  var exec = {
    vu: {},
    scenario: scenario,
    instance: {},
    test: {
      abort: function (msg) { b.exec.abort(msg); },
      fail: function (msg) { console.error('test marked as failed: ' + (msg || '')); b.exec.fail = true; }
    }
  };
  Object.defineProperty(exec.vu, 'idInInstance', { get: function () { vuOnly('VU'); return b.exec.info().vu; }, enumerable: true });
  Object.defineProperty(exec.vu, 'idInTest', { get: function () { vuOnly('VU'); return b.exec.info().vu; }, enumerable: true });
  Object.defineProperty(exec.vu, 'iterationInInstance', { get: function () { vuOnly('VU'); return b.exec.info().iter; }, enumerable: true });
  Object.defineProperty(exec.vu, 'iterationInScenario', { get: function () { vuOnly('VU'); return b.exec.info().iter; }, enumerable: true });
  Object.defineProperty(scenario, 'name', { get: function () { vuOnly('scenario'); return b.exec.scenario.name; }, enumerable: true });
  Object.defineProperty(scenario, 'executor', { get: function () { vuOnly('scenario'); return b.exec.scenario.executor; }, enumerable: true });
  b.modules['k6/execution'] = exec;
})
)JS";

}  // namespace

void InstallExecutionModule(duk_context* ctx) {
  // [.. __b]
  duk_push_object(ctx);
  PutFunction(ctx, -1, "info", Native<InfoImpl>, 0);
  PutFunction(ctx, -1, "abort", Native<AbortImpl>, 1);
  duk_push_object(ctx);
  duk_push_string(ctx, "default");
  duk_put_prop_string(ctx, -2, "name");
  duk_push_string(ctx, "");
  duk_put_prop_string(ctx, -2, "executor");
  duk_put_prop_string(ctx, -2, "scenario");
  duk_put_prop_string(ctx, -2, "exec");
  RunEmbeddedInstaller(ctx, "barrage:k6/execution.js", kExecutionJs);
}

}  // namespace barrage::agent::js
