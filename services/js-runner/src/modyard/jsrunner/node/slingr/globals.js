'use strict';
// Slingr's globals for package code (docs/slingr.md has the table): sys.logs, sys.storage,
// sys.events, sys.utils, sys.exceptions, config, dependencies.http (alias svc.http), pkg.
// Calls that leave the process (HTTP, storage, events) are synchronous host calls; crypto and
// text run here. A member modyard does not support throws an error naming it: never a silent
// undefined.

const crypto = require('crypto');

// Slingr's exception codes and the HTTP status that classifies them (5xx/408/429 retried).
const EXCEPTION_STATUS = {
    badRequest: 400,
    validationErrors: 400,
    unauthorized: 401,
    forbidden: 403,
    notFound: 404,
    conflict: 409,
    optimisticLocking: 409,
    timeout: 408,
    internalError: 500,
    serviceUnavailable: 503,
};

class SlingrException extends Error {
    constructor(code, message, additionalInfo) {
        super(message || code || 'the script failed');
        this.name = 'SlingrException';
        this.code = String(code || 'internalError');
        this.additionalInfo = additionalInfo === undefined ? null : additionalInfo;
        if (EXCEPTION_STATUS[this.code]) this.status = EXCEPTION_STATUS[this.code];
    }
}

function describe(err) {
    if (err === null || err === undefined || typeof err !== 'object') {
        return { message: String(err), name: 'Error' };
    }
    const status = err.status || (err.response && err.response.status);
    const slingr = err.name === 'SlingrException';
    return {
        message: String(err.message || err).slice(0, 4096),
        name: String(err.name || 'Error'),
        // A Slingr exception's own code (badRequest…) is not a Node code: it is classified by
        // its status; one without a known status is the package's decision, not retried.
        code: slingr ? (Number.isInteger(status) ? undefined : 'ERR_SLINGR_EXCEPTION') : typeof err.code === 'string' ? err.code : undefined,
        status: Number.isInteger(status) ? status : undefined,
    };
}

function unsupported(name, why) {
    return new Proxy(
        {},
        {
            get(target, member) {
                if (typeof member === 'symbol') return undefined;
                throw new Error(`${name}.${String(member)} is not supported on modyard: ${why}`);
            },
        }
    );
}

// An object whose unknown members throw, naming them (typos and unported APIs alike).
function strict(name, members) {
    return new Proxy(members, {
        get(target, member) {
            if (typeof member === 'symbol' || member in target) return target[member];
            if (member === 'toJSON' || member === 'then' || member === 'inspect') return undefined;
            throw new Error(`${name}.${String(member)} is not supported on modyard (docs/slingr.md lists what is)`);
        },
    });
}

function base64url(buffer) {
    return Buffer.from(buffer).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

const HMAC = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

function jwtSign(payload, key, algorithm) {
    const alg = algorithm || 'HS256';
    if (!HMAC[alg]) throw new Error(`sys.utils.crypto.jwt: algorithm ${alg} is not supported (HS256, HS384, HS512)`);
    const head = base64url(JSON.stringify({ alg, typ: 'JWT' }));
    const body = base64url(JSON.stringify(payload || {}));
    const signature = base64url(crypto.createHmac(HMAC[alg], String(key)).update(`${head}.${body}`).digest());
    return `${head}.${body}.${signature}`;
}

function jwtDecode(token) {
    const parts = String(token).split('.');
    if (parts.length !== 3) throw new Error('sys.utils.crypto.jwt: not a JWT');
    const decode = (part) => JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
    return { header: decode(parts[0]), payload: decode(parts[1]), parts };
}

function jwtVerify(token, key) {
    const { header, payload, parts } = jwtDecode(token);
    const digest = HMAC[header.alg];
    if (!digest) return false;
    const expected = crypto.createHmac(digest, String(key)).update(`${parts[0]}.${parts[1]}`).digest();
    const given = Buffer.from(parts[2], 'base64url');
    if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return false;
    if (typeof payload.exp === 'number' && payload.exp * 1000 < Date.now()) return false;
    return true;
}

const hash = (algorithm) => (text, encoding) => crypto.createHash(algorithm).update(String(text)).digest(encoding || 'hex');
const hmac = (algorithm) => (text, key, encoding) => crypto.createHmac(algorithm, String(key)).update(String(text)).digest(encoding || 'hex');

const base64 = {
    encode: (text) => Buffer.from(String(text), 'utf8').toString('base64'),
    decode: (text) => Buffer.from(String(text), 'base64').toString('utf8'),
};

const text = {
    capitalize: (value) => (value ? String(value).charAt(0).toUpperCase() + String(value).slice(1) : value),
    titleCase: (value) => String(value).toLowerCase().replace(/(^|\s)\S/g, (c) => c.toUpperCase()),
    // `Hello ${name}` with values from `data` (Slingr's template text), unknown names left empty.
    processTemplate: (template, data) =>
        String(template).replace(/\$\{\s*([\w.]+)\s*\}/g, (m, key) => {
            const value = key.split('.').reduce((at, part) => (at == null ? undefined : at[part]), data || {});
            return value === undefined || value === null ? '' : String(value);
        }),
};

function createGlobals({ host, logLine, state, descriptor, pkg }) {
    // A host call's answer: the result, or its error thrown as a Slingr-shaped exception.
    function rpc(method, args) {
        const answer = host(method, args);
        if (answer.error) {
            const err = new Error(answer.error.message);
            err.code = answer.error.code;
            throw err;
        }
        return answer.result === undefined ? null : answer.result;
    }

    function httpCall(method, options) {
        const opts = typeof options === 'string' ? { url: options } : Object.assign({}, options);
        const settings = opts.settings || {};
        let url = opts.url;
        if (!url && opts.path) {
            const base = opts.baseUrl || (state.config && state.config.baseUrl);
            if (!base) throw new Error('dependencies.http: `path` needs a base URL (`baseUrl` in the options or the configuration)');
            url = String(base).replace(/\/+$/, '') + '/' + String(opts.path).replace(/^\/+/, '');
        }
        if (!url) throw new Error('dependencies.http: give `url` (or `path` on a base URL)');
        const headers = Object.assign({}, opts.headers || {});
        const auth = opts.authorization || settings.authorization;
        if (auth && auth.type === 'basic') {
            headers.Authorization = 'Basic ' + Buffer.from(`${auth.username || ''}:${auth.password || ''}`).toString('base64');
        } else if (auth && auth.type === 'bearer') {
            headers.Authorization = 'Bearer ' + (auth.token || '');
        }
        const timeout = Number(settings.readTimeout || settings.connectionTimeout || opts.timeout || 0);
        const answer = host('http', {
            url: String(url),
            method,
            headers,
            params: opts.params || null,
            data: opts.body === undefined ? null : opts.body,
            timeout,
            followRedirects: settings.followRedirects !== false,
        });
        if (answer.error) {
            const err = new Error(answer.error.message);
            err.name = 'HttpError';
            err.code = answer.error.code;
            throw err;
        }
        const response = answer.response;
        const type = String(response.headers['content-type'] || '');
        let body = response.body;
        if (type.includes('json') || (/^\s*[[{]/.test(body || '') && !type.includes('text/html'))) {
            try {
                body = JSON.parse(body);
            } catch (err) {
                // not JSON after all: the text
            }
        }
        if (response.status >= 400) {
            const err = new SlingrException(response.status >= 500 ? 'internalError' : 'badRequest', `HTTP ${response.status} from ${url}`, {
                status: response.status,
                headers: response.headers,
                body,
            });
            err.status = response.status;
            throw err;
        }
        if (settings.fullResponse) return { status: response.status, headers: response.headers, body };
        return body;
    }

    const http = strict('dependencies.http', {});
    for (const method of ['get', 'post', 'put', 'patch', 'delete', 'head', 'options']) {
        http[method] = (options) => httpCall(method.toUpperCase(), options);
    }

    const logs = {};
    for (const level of ['debug', 'info', 'warn', 'error']) logs[level] = (...args) => logLine(level, args);

    const storage = strict('sys.storage', {
        get: (key, options) => rpc('slingr.storage.get', { key: String(key), options: options || {} }),
        put: (key, value, options) => rpc('slingr.storage.put', { key: String(key), value, options: options || {} }),
        replace: (key, value, options) => rpc('slingr.storage.put', { key: String(key), value, options: options || {}, replace: true }),
        remove: (key) => rpc('slingr.storage.remove', { key: String(key) }),
    });

    const events = strict('sys.events', {
        triggerEvent: (name, data) => rpc('slingr.event', { name: String(name), data: data === undefined ? null : data }),
    });

    const sys = strict('sys', {
        logs: strict('sys.logs', logs),
        storage,
        events,
        utils: strict('sys.utils', {
            crypto: strict('sys.utils.crypto', {
                md5: hash('md5'),
                sha1: hash('sha1'),
                sha256: hash('sha256'),
                sha512: hash('sha512'),
                hmacSha1: hmac('sha1'),
                hmacSha256: hmac('sha256'),
                hmacSha512: hmac('sha512'),
                base64,
                jwt: strict('sys.utils.crypto.jwt', { generate: jwtSign, sign: jwtSign, verify: jwtVerify, decode: (t) => jwtDecode(t).payload }),
            }),
            base64,
            text: strict('sys.utils.text', text),
        }),
        exceptions: strict('sys.exceptions', {
            throwException: (code, message, additionalInfo) => {
                throw new SlingrException(code, message, additionalInfo);
            },
            SlingrException,
        }),
        data: unsupported('sys.data', 'Slingr app entities do not exist here'),
        ui: unsupported('sys.ui', 'UI services run in a Slingr app\'s browser'),
        app: unsupported('sys.app', 'there is no Slingr app around the package'),
        jobs: unsupported('sys.jobs', 'there are no Slingr jobs here'),
        users: unsupported('sys.users', 'there are no Slingr app users here'),
    });

    const config = {
        get: (name) => {
            const built = state.config || {};
            if (name === undefined) return JSON.parse(JSON.stringify(built));
            return built[name] === undefined ? null : built[name];
        },
    };

    // `dependencies.<package>.functions.<namespace>.<fn>(...)`: each member is callable and has
    // members, so the path is known only at the call (a host call; the function runs in the
    // dependency's own sandbox with its installation's configuration).
    function functionsOf(dependency) {
        const make = (path) =>
            new Proxy(function () {}, {
                get(target, member) {
                    if (typeof member === 'symbol' || member === 'then' || member === 'toJSON') return undefined;
                    return make(path.concat(String(member)));
                },
                apply(target, self, args) {
                    if (!path.length) throw new Error(`dependencies.${dependency}.functions: name a function`);
                    return rpc('slingr.dependency', { package: dependency, path, args: JSON.parse(JSON.stringify(args)) });
                },
            });
        return make([]);
    }

    const dependencies = new Proxy(
        { http },
        {
            get(target, member) {
                if (typeof member === 'symbol' || member in target) return target[member];
                const declared = (descriptor.dependencies || []).find((dep) => dep && dep.name === member);
                if (declared && declared.type === 'package') {
                    return { functions: functionsOf(String(member)) };
                }
                if (declared) {
                    throw new Error(`dependencies.${String(member)} is not supported on modyard (a ${declared.type} dependency; only http and packages are)`);
                }
                throw new Error(`dependencies.${String(member)}: the package declares no dependency ${String(member)}`);
            },
        }
    );

    const console = {};
    for (const level of ['log', 'info', 'debug', 'warn', 'error']) {
        console[level] = (...args) => logLine(level === 'log' ? 'info' : level, args);
    }

    return {
        sys,
        config,
        dependencies,
        svc: { http },
        pkg,
        console,
    };
}

module.exports = { createGlobals, describe, SlingrException };
