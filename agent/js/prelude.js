// Barrage runtime prelude: runs first in every VU heap (Duktape 2.7, ES5.1
// plus some ES2015). It builds what every script has of the k6 modules on
// top of the native primitives in the hidden object __b (see runtime.cc);
// the rest (polyfills, console, k6/metrics, ...) is loaded on first use.
// Written in ES5: it is not passed through Babel.
(function (global) {
  'use strict';
  var b = global.__b;

  // The polyfills (polyfills.js), Map and Set (collections.js), console
  // (console.js), k6/metrics (metrics.js), k6-summary (summary.js) and the
  // asynchronous half (async.js: timers, promises, async functions, streams)
  // are loaded into a heap the first time a script reads one of them:
  // until then each name is a loading stub that runtime.cc defines
  // (kLazyProperties). Functions cost their bytecode and an object each in
  // every heap; most scripts use few of them (tests/bench/README.md, "Idle
  // VUs").
  function isAsyncFn(f) {
    // Babel turns async functions into regular ones; the runtime marks none.
    return typeof f === 'function' && f.constructor && f.constructor.name === 'AsyncFunction';
  }

  // ---- module k6 -------------------------------------------------------------
  var k6 = {};
  // check() is native (module_k6.cc): it runs in every iteration.
  k6.check = b.checkNative;
  k6.group = function (name, fn) {
    if (b.inInit()) throw new Error('group() is not supported in the init context');
    if (typeof name !== 'string' || name === '') throw new Error('group name must be a non-empty string');
    if (name.indexOf('::') !== -1) throw new Error("group and check names may not contain '::'");
    if (typeof fn !== 'function') throw new Error('group() requires a callback as a second argument');
    if (isAsyncFn(fn)) throw new Error('group() does not support async functions as arguments');
    var prev = b.groupEnter(name), start = b.now();
    try { return fn(); } finally { b.groupExit(prev, b.now() - start); }
  };
  k6.sleep = function (secs) { b.sleep(Number(secs)); };
  k6.fail = function (msg) { throw new Error(msg === undefined ? '' : String(msg)); };
  k6.randomSeed = function (seed) { b.randomSeed(Number(seed)); };
  b.modules['k6'] = k6;

  // Duktape.errCreate, which words error texts as k6 does, is native
  // (runtime.cc, ErrCreate); so is naming the exports (NameExportsImpl).

  // e.lineNumber is Duktape's: the line of the first frame that has a file.
  // When that frame is in a helper Babel added to a module (line 0: the
  // helper is not the user's code, see common/line_map.h), the user's line
  // is that of the first frame in their code. Only reading it costs.
  var lineNumber = Object.getOwnPropertyDescriptor(Error.prototype, 'lineNumber');
  if (lineNumber && lineNumber.get) {
    Object.defineProperty(Error.prototype, 'lineNumber', {
      configurable: true, enumerable: false, set: lineNumber.set,
      get: function () {
        var n = lineNumber.get.call(this);
        if (n !== 0) return n;
        var frames = String(this.stack).split('\n');
        for (var i = 1; i < frames.length; i++) {
          var m = /^ +at .* \((?!barrage:)[^()]*:([1-9][0-9]*)\)( strict| tailcall| construct| preventsyield| directeval)*$/.exec(frames[i]);
          if (m) return Number(m[1]);
        }
        return n;
      }
    });
  }
})(this);
