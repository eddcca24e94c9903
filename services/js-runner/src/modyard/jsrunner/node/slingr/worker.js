'use strict';
// A worker thread running Slingr package code (started by node/slingr/main.js). Package code
// sees Slingr's synchronous globals (globals.js); each host call posts a message to the main
// thread and blocks in Atomics.wait until the answer is in the shared buffer.

const fs = require('fs');
const path = require('path');
const vm = require('vm');
const { parentPort, workerData } = require('worker_threads');
const { createGlobals, describe, SlingrException } = require('./globals');

const shared = workerData.shared;
const ctrl = new Int32Array(shared, 0, 2);
const data = new Uint8Array(shared, 8);

function host(method, args) {
    Atomics.store(ctrl, 0, 0);
    parentPort.postMessage({ t: 'host', method, args });
    Atomics.wait(ctrl, 0, 0);
    const size = Atomics.load(ctrl, 1);
    // TextDecoder refuses a view on shared memory: copy it out first.
    return JSON.parse(Buffer.from(data.slice(0, size)).toString('utf8'));
}

function logLine(level, args) {
    const msg = args
        .map((arg) => {
            if (typeof arg === 'string') return arg;
            if (arg instanceof Error) return arg.stack || String(arg);
            try {
                return JSON.stringify(arg);
            } catch (err) {
                return String(arg);
            }
        })
        .join(' ');
    parentPort.postMessage({ t: 'log', level, msg: msg.slice(0, 8192) });
}

// -- the package, loaded once per installation in each worker --------------------------------
//
// A child serves one package version to every workspace. On Slingr each app has its own package
// runtime, so packages keep what they build from their configuration in script-level variables
// (a client, an auth header, a token with its expiry). One context shared by every caller would
// hand one installation's — one workspace's — credentials to the next caller's call (found by
// the 2026-12-07 tenancy probe): each installation gets a context of its own, loaded on its first
// call, the least recently used dropped past MAX_CONTEXTS.

const MAX_CONTEXTS = 16;
const contexts = new Map(); // "<packageDir>\0<workspace>\0<installation>" → loaded package

function packageFor(call) {
    const tenant = Array.isArray(call.tenant) ? call.tenant : ['', ''];
    const key = [call.packageDir, String(tenant[0] || ''), String(tenant[1] || '')].join('\0');
    let found = contexts.get(key);
    if (found) {
        contexts.delete(key); // re-inserted below: the Map's order is the use order
    } else {
        found = loadPackage(call.packageDir);
        while (contexts.size >= MAX_CONTEXTS) contexts.delete(contexts.keys().next().value);
    }
    contexts.set(key, found);
    return found;
}

function readJson(file) {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
}

function jsFiles(target) {
    const stat = fs.statSync(target);
    if (!stat.isDirectory()) return [target];
    return fs
        .readdirSync(target)
        .filter((name) => name.endsWith('.js'))
        .sort()
        .map((name) => path.join(target, name));
}

function loadPackage(dir) {
    const descriptor = readJson(path.join(dir, 'package.json'));
    const state = { call: null, configCache: new Map() };
    const scripts = {};
    const pkg = { [descriptor.name]: scripts };
    const listeners = {};
    const globals = createGlobals({ host, logLine, state, descriptor, pkg, listeners });
    const context = vm.createContext(globals, { name: `slingr:${descriptor.name}` });
    const run = (source, filename) => vm.runInContext(source, context, { filename });
    const metadata = Array.isArray(descriptor.metadata) ? descriptor.metadata : [];
    for (const entry of metadata) {
        if (!entry || (entry.type !== 'script' && entry.type !== 'listener')) continue;
        const target = path.join(dir, String(entry.path || '').replace(/^\/+/, ''));
        for (const file of jsFiles(target)) {
            const source = fs.readFileSync(file, 'utf8');
            if (entry.type === 'script') {
                const namespace = entry.namespace || path.basename(file, '.js');
                const exportsObject = (scripts[namespace] = scripts[namespace] || {});
                run(`(function (exports) {${source}\n})`, file)(exportsObject);
            } else {
                run(`(function (listeners) {${source}\n})`, file)(listeners);
            }
        }
    }
    return { dir, descriptor, state, run, listeners, scripts, builder: builderOf(dir, descriptor, run), steps: new Map() };
}

// `configurationBuilder`: the source of a function (`"function (config) {…}"`), or, as Slingr's
// own packages write it (github, google-workspace, the skeleton package), the path of a package
// file that declares it (`"/configurationBuilder.js"` holding `let configurationBuilder =
// function (config) {…}`): that file runs in the package's context and its binding is the builder.
// The registry checked that the file exists and declares it (formats/slingr.py).
function builderOf(dir, descriptor, run) {
    const given = descriptor.configurationBuilder;
    if (typeof given !== 'string' || !given.trim()) return null;
    const written = given.trim();
    if (isBuilderPath(written)) {
        const file = path.join(dir, written.replace(/^\/+/, ''));
        const source = fs.readFileSync(file, 'utf8');
        const found = run(
            `(function () {${source}\n;return typeof configurationBuilder === 'function' ? configurationBuilder : undefined;})`,
            file
        )();
        if (typeof found !== 'function') {
            throw new TypeError(`${written} (package.json's configurationBuilder) must declare a function configurationBuilder(config)`);
        }
        return found;
    }
    return run(`(${written})`, 'package.json#configurationBuilder');
}

// A path names a file (no parenthesis, arrow or space: no function's source has none of them).
function isBuilderPath(text) {
    return !/[()\s]|=>/.test(text);
}

function stepOf(pkgState, entry) {
    let found = pkgState.steps.get(entry);
    if (found) return found;
    const holder = {};
    pkgState.run(`(function (step) {${fs.readFileSync(entry, 'utf8')}\n})`, entry)(holder);
    const names = Object.keys(holder).filter((key) => typeof holder[key] === 'function');
    if (names.length !== 1) {
        throw new TypeError(`${entry} must define exactly one step.<name> function (found ${names.length})`);
    }
    let defaults = {};
    const definition = path.join(path.dirname(entry), 'step.json');
    if (fs.existsSync(definition)) {
        for (const input of readJson(definition).inputs || []) {
            if (!input || !input.name || input.defaultValue === undefined) continue;
            // A one-element list for a single value is that value, as Slingr reads it.
            const value = input.defaultValue;
            defaults[input.name] = Array.isArray(value) && value.length === 1 && input.multiplicity !== 'many' ? value[0] : value;
        }
    }
    found = { fn: holder[names[0]], defaults };
    pkgState.steps.set(entry, found);
    return found;
}

// `label` fields store nothing (slingr-docs), yet official packages read their value at run
// time: slack's SLACK_API_BASE_URL `"value": "https://slack.com/api"`, `webhooksUrl`'s
// `"@config.WEBHOOK_URL"`, mailchimp's `"config.apiKey.substring(…) + \".api.mailchimp.com/3.0\""`.
// A literal is the value; `@config.<name>` another setting's (WEBHOOK_URL: the installation's
// listener URL); a value that reads `config.<name>` is an expression evaluated in the package's
// context over the settings. One that throws is null, logged.
function withLabels(pkgState, config, listenerUrl) {
    const fields = Array.isArray(pkgState.descriptor.configuration) ? pkgState.descriptor.configuration : [];
    const known = Object.assign({ WEBHOOK_URL: listenerUrl || null }, config);
    for (const field of fields) {
        if (!field || field.type !== 'label' || typeof field.name !== 'string' || !('value' in field)) continue;
        if (config[field.name] !== undefined) continue;
        let value = field.value;
        const reference = typeof value === 'string' && /^\s*@config\.([A-Za-z_$][\w$]*)\s*$/.exec(value);
        if (reference) {
            value = known[reference[1]] === undefined ? null : known[reference[1]];
        } else if (typeof value === 'string' && /\bconfig\.[A-Za-z_$]/.test(value)) {
            try {
                const evaluate = pkgState.run(`(function (config) { return (${value}\n); })`, `package.json#configuration/${field.name}`);
                value = plain(evaluate(JSON.parse(JSON.stringify(known))));
            } catch (err) {
                logLine('warn', [`configuration label ${field.name}: its value ${JSON.stringify(value)} failed: ${(err && err.message) || err}`]);
                value = null;
            }
        }
        config[field.name] = value;
        known[field.name] = value;
    }
    return config;
}

function configOf(pkgState, raw, listenerUrl) {
    const key = JSON.stringify([raw || {}, listenerUrl || null]);
    let built = pkgState.state.configCache.get(key);
    if (built === undefined) {
        built = withLabels(pkgState, JSON.parse(JSON.stringify(raw || {})), listenerUrl);
        if (pkgState.builder) {
            const answer = pkgState.builder(built);
            if (answer && typeof answer === 'object') built = answer;
        }
        if (pkgState.state.configCache.size > 100) pkgState.state.configCache.clear();
        pkgState.state.configCache.set(key, built);
    }
    return built;
}

function normalPath(value) {
    return '/' + String(value || '').replace(/^\/+|\/+$/g, '');
}

// The package's HTTP listeners for one webhook request: every `webhook` and `webhookSync`
// listener whose `matching.path` is the request's path (or that names none) runs; the first
// `webhookSync` one's return value answers the caller.
function runWebhook(pkgState, request) {
    const path = normalPath(request.path);
    const listening = Object.keys(pkgState.listeners).filter((name) => {
        const listener = pkgState.listeners[name];
        const options = (listener && listener.options) || {};
        const matching = options.matching || {};
        return (
            listener.type === 'service' &&
            options.service === 'http' &&
            (options.event === 'webhook' || options.event === 'webhookSync') &&
            typeof listener.callback === 'function' &&
            (!matching.path || normalPath(matching.path) === path)
        );
    });
    if (!listening.length) {
        const err = new Error(`the package has no webhook listener for ${path}`);
        err.status = 404;
        throw err;
    }
    // Slingr's http service (its README, "Events / Webhooks"): `event.data` holds the request,
    // `{body, headers (lower case), parameters (the query), requestInfo: {method, url, encoding}}`
    // (official listeners read event.data.body, .headers['x-github-event'], .parameters).
    const headers = {};
    for (const [name, value] of Object.entries(request.headers || {})) headers[String(name).toLowerCase()] = value;
    const parameters = plain(request.query || {});
    const base = pkgState.state.call && pkgState.state.call.listenerUrl;
    const query = new URLSearchParams(parameters).toString();
    const event = {
        type: 'webhook',
        data: {
            body: plain(request.data),
            headers,
            parameters,
            requestInfo: {
                method: String(request.method || 'POST').toUpperCase(),
                url: (base ? String(base).replace(/\/+$/, '') : '') + path + (query ? '?' + query : ''),
                path,
                encoding: 'UTF-8',
            },
        },
    };
    let response = null;
    for (const name of listening) {
        const listener = pkgState.listeners[name];
        const result = listener.callback(plain(event));
        if (listener.options.event === 'webhookSync' && response === null) {
            response = { status: 200, body: plain(result === undefined ? null : result) };
        }
    }
    parentPort.postMessage({
        t: 'done',
        outputs: {},
        response: response || { status: 200, body: { status: 'ok' } },
    });
}

// The package's `type: 'package'` listeners of one of its own events (sys.events.triggerEvent):
// `options.event` names it, `options.package` (if given) is this package.
function runPackageEvent(pkgState, trigger) {
    const own = pkgState.descriptor.name;
    let ran = 0;
    for (const name of Object.keys(pkgState.listeners)) {
        const listener = pkgState.listeners[name];
        const options = (listener && listener.options) || {};
        if (listener.type !== 'package' || typeof listener.callback !== 'function') continue;
        if (options.event !== trigger.event || (options.package && options.package !== own)) continue;
        listener.callback({ type: 'package', package: own, event: trigger.event, data: plain(trigger.data) });
        ran += 1;
    }
    parentPort.postMessage({ t: 'done', outputs: {}, response: { status: 200, body: { listeners: ran } } });
}

// A dependent package's `dependencies.<this>.functions.<namespace>.<fn>(...)` (or `.<fn>` when
// one namespace alone exports it): its return value goes back to the caller.
function runFunction(pkgState, path, args) {
    let fn;
    if (path.length === 2 && pkgState.scripts[path[0]]) {
        fn = pkgState.scripts[path[0]][path[1]];
    } else if (path.length === 1) {
        const found = Object.keys(pkgState.scripts).filter((ns) => typeof pkgState.scripts[ns][path[0]] === 'function');
        if (found.length > 1) throw new TypeError(`functions.${path[0]} is exported by ${found.join(', ')}: name the namespace`);
        if (found.length === 1) fn = pkgState.scripts[found[0]][path[0]];
    }
    if (typeof fn !== 'function') {
        const err = new TypeError(`${pkgState.descriptor.name} has no function ${path.join('.')}`);
        err.status = 404;
        throw err;
    }
    const result = fn.apply(null, args);
    parentPort.postMessage({ t: 'done', outputs: {}, response: { result: plain(result === undefined ? null : result) } });
}

function plain(value) {
    return value === undefined ? null : JSON.parse(JSON.stringify(value));
}

function onCall(call) {
    let loaded = null;
    try {
        loaded = packageFor(call);
        loaded.state.call = call;
        loaded.state.config = configOf(loaded, call.config, call.listenerUrl);
        if (call.kind === 'function') {
            runFunction(loaded, call.path || [], call.args || []);
            return;
        }
        if (call.kind === 'webhook') {
            const event = call.event || {};
            if (event.kind === 'package') runPackageEvent(loaded, event);
            else runWebhook(loaded, event);
            return;
        }
        const step = stepOf(loaded, call.entry);
        const content = call.content && typeof call.content === 'object' && !Array.isArray(call.content) ? call.content : {};
        const inputs = Object.assign({}, step.defaults, call.properties || {}, content);
        let result = step.fn(inputs);
        if (result === undefined || result === null) result = {};
        else if (typeof result !== 'object' || Array.isArray(result)) result = { result };
        parentPort.postMessage({ t: 'done', outputs: { out: [plain(result)] } });
    } catch (err) {
        parentPort.postMessage({ t: 'failed', error: describe(err) });
    } finally {
        if (loaded) loaded.state.call = null;
    }
}

parentPort.on('message', (message) => {
    if (message.t === 'call') onCall(message.call);
});

module.exports = { SlingrException };
