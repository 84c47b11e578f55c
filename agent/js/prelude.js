// Barrage runtime prelude: runs first in every VU heap (Duktape 2.7, ES5.1
// plus some ES2015). It fills what Babel's output and k6 scripts need and
// Duktape lacks, and builds the JS halves of the k6 modules on top of the
// native primitives in the hidden object __b (see runtime.cc). Written in
// ES5: it is not passed through Babel.
(function (global) {
  'use strict';
  var b = global.__b;

  // ---- polyfills -----------------------------------------------------------
  function define(obj, name, fn) {
    if (!obj[name]) Object.defineProperty(obj, name, { value: fn, writable: true, configurable: true });
  }
  if (typeof Symbol !== 'undefined') {
    var arrayIter = function () {
      var a = this, i = 0;
      var it = { next: function () { return i < a.length ? { value: a[i++], done: false } : { value: undefined, done: true }; } };
      it[Symbol.iterator] = function () { return this; };
      return it;
    };
    define(Array.prototype, Symbol.iterator, arrayIter);
    define(String.prototype, Symbol.iterator, arrayIter);
    if (typeof Uint8Array !== 'undefined') define(Uint8Array.prototype, Symbol.iterator, arrayIter);
  }
  define(Object, 'entries', function (o) { return Object.keys(o).map(function (k) { return [k, o[k]]; }); });
  define(Object, 'values', function (o) { return Object.keys(o).map(function (k) { return o[k]; }); });
  define(Array.prototype, 'includes', function (x) {
    for (var i = 0; i < this.length; i++) if (this[i] === x || (x !== x && this[i] !== this[i])) return true;
    return false;
  });
  define(Array.prototype, 'find', function (f, t) { for (var i = 0; i < this.length; i++) if (f.call(t, this[i], i, this)) return this[i]; });
  define(Array.prototype, 'findIndex', function (f, t) { for (var i = 0; i < this.length; i++) if (f.call(t, this[i], i, this)) return i; return -1; });
  define(Array.prototype, 'fill', function (v, s, e) { var n = this.length; s = s || 0; e = e === undefined ? n : e; for (var i = s; i < e; i++) this[i] = v; return this; });
  define(Array, 'from', function (src, f, t) {
    var out = [];
    if (src == null) return out;
    if (typeof Symbol !== 'undefined' && src[Symbol.iterator] && typeof src.length !== 'number') {
      var it = src[Symbol.iterator](), r;
      while (!(r = it.next()).done) out.push(r.value);
    } else { for (var i = 0; i < src.length; i++) out.push(src[i]); }
    return f ? out.map(f, t) : out;
  });
  define(Array, 'of', function () { return Array.prototype.slice.call(arguments); });
  define(String.prototype, 'includes', function (s, p) { return this.indexOf(s, p) !== -1; });
  define(String.prototype, 'startsWith', function (s, p) { p = p || 0; return this.substr(p, s.length) === s; });
  define(String.prototype, 'endsWith', function (s, l) { var t = l === undefined ? this : this.substr(0, l); return t.substr(t.length - s.length) === s; });
  define(String.prototype, 'repeat', function (n) { var r = ''; for (var i = 0; i < n; i++) r += this; return r; });
  define(String.prototype, 'padStart', function (n, c) { var s = String(this); c = c === undefined ? ' ' : String(c); while (s.length < n) s = c + s; return s.length > n && c.length > 1 ? s.substr(s.length - n) : s; });
  define(String.prototype, 'padEnd', function (n, c) { var s = String(this); c = c === undefined ? ' ' : String(c); while (s.length < n) s = s + c; return s.substr(0, Math.max(n, this.length)); });
  define(String.prototype, 'trimStart', function () { return this.replace(/^\s+/, ''); });
  define(String.prototype, 'trimEnd', function () { return this.replace(/\s+$/, ''); });
  define(Number, 'isInteger', function (v) { return typeof v === 'number' && isFinite(v) && Math.floor(v) === v; });
  define(Number, 'isFinite', function (v) { return typeof v === 'number' && isFinite(v); });
  define(Number, 'isNaN', function (v) { return typeof v === 'number' && v !== v; });

  // Map and Set (collections.js, agent/js/collections_js.inc) are loaded
  // on first use, as the asynchronous half below: about 10 KiB of functions
  // that most scripts never call, in every heap.
  if (typeof global.Map === 'undefined') {
    var loadCollections = function () {
      ['Map', 'Set'].forEach(function (name) {
        var d = Object.getOwnPropertyDescriptor(global, name);
        if (d && d.get) delete global[name];  // a loading stub, not the script's own
      });
      b.loadLibrary('collections');
    };
    ['Map', 'Set'].forEach(function (name) {
      Object.defineProperty(global, name, {
        configurable: true, enumerable: false,
        get: function () { loadCollections(); return global[name]; },
        set: function (v) { delete global[name]; global[name] = v; }
      });
    });
  }

  // ---- console -------------------------------------------------------------
  // k6 prints strings as they are, objects as JSON (cycles as [Circular]),
  // functions as [object Function], errors as their string.
  function formatValue(v) {
    if (typeof v === 'string') return v;
    if (typeof v === 'function') return '[object Function]';
    if (v instanceof Error) return String(v);
    if (v === undefined) return 'undefined';
    if (typeof v !== 'object' || v === null) return String(v);
    var seen = [];
    try {
      return JSON.stringify(v, function (k, x) {
        if (typeof x === 'object' && x !== null) {
          if (seen.indexOf(x) !== -1) return '[Circular]';
          seen.push(x);
        }
        if (typeof x === 'function') return '[object Function]';
        return x;
      });
    } catch (e) { return String(v); }
  }
  function logger(level) {
    return function () {
      var parts = [];
      for (var i = 0; i < arguments.length; i++) parts.push(formatValue(arguments[i]));
      b.log(level, parts.join(' '));
    };
  }
  global.console = { log: logger('info'), info: logger('info'), debug: logger('debug'),
                     warn: logger('warning'), error: logger('error') };

  // ---- shared helpers for the modules ----------------------------------------
  // Tag values: strings, numbers and booleans, stringified as JS does.
  function checkTags(tags, wrap) {
    if (tags === undefined || tags === null) return null;
    if (typeof tags !== 'object') throw new Error(wrap + 'tags must be an object');
    var out = {};
    Object.keys(tags).forEach(function (k) {
      var v = tags[k], t = typeof v;
      if (t !== 'string' && t !== 'number' && t !== 'boolean') {
        throw new Error(wrap + "invalid value for metric tag '" + k +
          "': only String, Boolean and Number types are accepted as a metric tag values");
      }
      out[k] = String(v);
    });
    return out;
  }
  b.checkTags = checkTags;
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

  // ---- textSummary (jslib k6-summary) ----------------------------------------
  // handleSummary() gets the default summary rendered by the controller (the
  // same text as without handleSummary); textSummary() hands it back, with
  // colours if asked and each line prefixed by `indent`.
  b.modules['k6-summary'] = {
    textSummary: function (data, options) {
      var o = options || {};
      var texts = b.summaryText;
      if (!texts) throw new Error('textSummary() is only available in handleSummary()');
      var text = o.enableColors ? texts.color : texts.plain;
      if (o.indent) {
        text = text.split('\n').map(function (line) { return line.length ? o.indent + line : line; }).join('\n');
      }
      return text;
    }
  };

  // ---- module k6/metrics -----------------------------------------------------------
  var metricNameRe = /^[a-zA-Z_][a-zA-Z0-9_]{1,128}$/;
  function metricCtor(type) {
    var Ctor = function (name, isTime) {
      if (!(this instanceof Ctor)) throw new TypeError("Class constructor can't be invoked without 'new'");
      if (!b.inInit()) throw new Error('metrics must be declared in the init context');
      name = String(name);
      if (!metricNameRe.test(name)) {
        throw new Error("Invalid metric name: '" + name + "'. Metric names must only include up to 128 ASCII " +
          'letters, numbers, or underscores and start with a letter or an underscore.');
      }
      b.defineMetric(name, type, !!isTime);
      Object.defineProperty(this, 'name', { value: name, enumerable: true });
    };
    Ctor.prototype.add = function (value, tags) {
      if (b.inInit()) throw new Error('Adding to metrics in the init context is not supported');
      var extra = checkTags(tags, "cannot add tags for the '" + this.name + "' custom metric: ");
      var v = value === null || value === undefined ? NaN : Number(value);
      if (v !== v) {
        var msg = "'" + value + "' is an invalid value for metric '" + this.name + "', a number or a boolean value is expected";
        if (b.throwOnBadValue()) throw new Error(msg);
        console.warn(msg);
        return false;
      }
      b.emit(this.name, v, extra);
      return true;
    };
    return Ctor;
  }

  // ---- the asynchronous half, loaded on first use ------------------------------
  // Timers, promises, async functions, streams and asyncInvoke live in
  // async.js (agent/js/async_js.inc), loaded into a heap the first time a
  // script touches one of them: about 28 KiB per VU that scripts with only
  // blocking calls never need (tests/bench/vu_memory.sh).
  var asyncLoaded = false;
  b.loadAsync = function () {
    if (asyncLoaded) return;
    asyncLoaded = true;
    b.loadLibrary('async');
  };
  ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Promise', 'regeneratorRuntime'].forEach(function (name) {
    Object.defineProperty(global, name, {
      configurable: true, enumerable: false,
      get: function () { b.loadAsync(); return global[name]; },
      set: function (v) { delete global[name]; global[name] = v; }
    });
  });
  Object.defineProperty(b.modules, 'k6/timers', {
    configurable: true, enumerable: true,
    get: function () { b.loadAsync(); return b.modules['k6/timers']; }
  });
  b.resetLoop = function () {};  // async.js replaces it

  b.modules['k6/metrics'] = { Counter: metricCtor('counter'), Gauge: metricCtor('gauge'),
                              Rate: metricCtor('rate'), Trend: metricCtor('trend') };

  // Error texts as k6 (goja) words them where users match on them, in
  // e.message as well as in logs: Duktape says "identifier 'x' undefined"
  // and "callstack limit".
  var undefinedIdentifier = /^identifier '(.*)' undefined$/;
  Duktape.errCreate = function (e) {
    if (e instanceof ReferenceError) {
      var m = undefinedIdentifier.exec(e.message);
      if (m) e.message = m[1] + ' is not defined';
    } else if (e instanceof RangeError && (e.message === 'callstack limit' || e.message === 'C stack depth limit')) {
      e.message = 'Maximum call stack size exceeded';
    }
    return e;
  };

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

  // Exported functions without a name of their own (`export default
  // function () {}` becomes an anonymous function) are named after their
  // export in stack traces, as k6 shows `at default`.
  b.nameExports = function (exports) {
    if (exports === null || typeof exports !== 'object') return;
    Object.keys(exports).forEach(function (key) {
      var fn = exports[key];
      if (typeof fn !== 'function' || fn.name) return;
      try { Object.defineProperty(fn, 'name', { value: key, configurable: true }); } catch (e) { /* frozen: keep it */ }
    });
  };
})(this);
