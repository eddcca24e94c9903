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

const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);
const ABSOLUTE = /^[a-z][a-z0-9+.-]*:\/\//i;

function shown(value) {
    if (typeof value === 'string') return `'${value.length > 200 ? value.slice(0, 200) + '…' : value}'`;
    try {
        return String(JSON.stringify(value)).slice(0, 200);
    } catch (err) {
        return String(value);
    }
}

// The `authorization` option, as Slingr's SDK reads it (platform-sdk-services,
// rest/authentication: AuthenticationType basic, oauth2, digest, oauth, oauthTwitter,
// awsSignature). basic and oauth2 set the header here; digest answers the server's challenge
// (returns true: httpCall retries once with it); any other type throws naming it, so that a
// request never goes out without the credentials the package meant to send.
function authorize(auth, headers, where) {
    if (auth === undefined || auth === null) return false;
    if (typeof auth !== 'object') throw new TypeError(`${where}: authorization ${shown(auth)} must be an object such as {type: 'oauth2', accessToken}`);
    const type = auth.type;
    if (type === 'basic') {
        headers.Authorization = 'Basic ' + Buffer.from(`${auth.username || ''}:${auth.password || ''}`).toString('base64');
        return false;
    }
    if (type === 'oauth2') {
        if (auth.accessToken === undefined || auth.accessToken === null || auth.accessToken === '') {
            throw new Error(`${where}: authorization oauth2 has no accessToken; give {type: 'oauth2', accessToken, headerPrefix}`);
        }
        // OAuth2AuthenticationStrategy sends `headerPrefix + " " + accessToken`; the SDK has no
        // default prefix (it would send "null …"), the generated scripts pass "Bearer" (github
        // "token"): without one, "Bearer" (RFC 6750).
        const prefix = auth.headerPrefix === undefined || auth.headerPrefix === null || auth.headerPrefix === '' ? 'Bearer' : String(auth.headerPrefix);
        headers.Authorization = `${prefix} ${auth.accessToken}`;
        return false;
    }
    if (type === 'digest') return true;
    throw new Error(
        `${where}: authorization type ${shown(type)} is not supported on modyard (basic, oauth2, digest); ` +
            `set the Authorization header yourself (docs/slingr.md)`
    );
}

function withParams(url, params) {
    if (!params || typeof params !== 'object') return url;
    const parsed = new URL(url);
    for (const key of Object.keys(params)) {
        const value = params[key];
        for (const one of Array.isArray(value) ? value : [value]) parsed.searchParams.append(key, one === null || one === undefined ? '' : String(one));
    }
    return parsed.toString();
}

// RFC 7616 (MD5 and SHA-256, their -sess variants, qop auth or none) for a `digest` authorization.
function digestHeader(challenge, auth, method, url, where) {
    const fields = {};
    const text = challenge.replace(/^\s*digest\s+/i, '');
    const pattern = /([a-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))/gi;
    let match;
    while ((match = pattern.exec(text))) fields[match[1].toLowerCase()] = match[2] !== undefined ? match[2].replace(/\\(.)/g, '$1') : match[3];
    const algorithm = (fields.algorithm || 'MD5').toUpperCase();
    const digest = { MD5: 'md5', 'MD5-SESS': 'md5', 'SHA-256': 'sha256', 'SHA-256-SESS': 'sha256' }[algorithm];
    if (!digest || !fields.nonce) throw new Error(`${where}: the server's digest challenge (${shown(challenge)}) is not one modyard answers (MD5, SHA-256)`);
    const h = (value) => crypto.createHash(digest).update(value).digest('hex');
    const username = String(auth.username || '');
    const cnonce = crypto.randomBytes(8).toString('hex');
    const nc = '00000001';
    let ha1 = h(`${username}:${fields.realm || ''}:${auth.password || ''}`);
    if (algorithm.endsWith('-SESS')) ha1 = h(`${ha1}:${fields.nonce}:${cnonce}`);
    const parsed = new URL(url);
    const uri = parsed.pathname + parsed.search;
    const ha2 = h(`${method}:${uri}`);
    const qops = String(fields.qop || '').split(',').map((q) => q.trim());
    const qop = qops.includes('auth') ? 'auth' : null;
    const response = qop ? h(`${ha1}:${fields.nonce}:${nc}:${cnonce}:${qop}:${ha2}`) : h(`${ha1}:${fields.nonce}:${ha2}`);
    const quote = (value) => `"${String(value).replace(/(["\\])/g, '\\$1')}"`;
    const parts = [
        `username=${quote(username)}`,
        `realm=${quote(fields.realm || '')}`,
        `nonce=${quote(fields.nonce)}`,
        `uri=${quote(uri)}`,
        `algorithm=${algorithm}`,
        `response=${quote(response)}`,
    ];
    if (qop) parts.push(`qop=${qop}`, `nc=${nc}`, `cnonce=${quote(cnonce)}`);
    if (fields.opaque !== undefined) parts.push(`opaque=${quote(fields.opaque)}`);
    return 'Digest ' + parts.join(', ');
}

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

    // Slingr's http service (its README, "Javascript API"): `get(options)` or the shortcut
    // `get('/path')` / `post('/path', body)` (a path on the base URL; the second argument is the
    // body of post/put/patch). Each option is read from `settings` first (the newer SDK's
    // HttpRequest.fromJson), then from the top level (the README and slack's generated steps).
    function httpCall(method, first, second) {
        const where = `dependencies.http.${method.toLowerCase()}`;
        let opts;
        if (typeof first === 'string') {
            opts = { path: first };
            if (second !== undefined && BODY_METHODS.has(method)) opts.body = second;
        } else if (first && typeof first === 'object' && !Array.isArray(first)) {
            opts = Object.assign({}, first);
        } else {
            throw new TypeError(`${where}: ${shown(first)} is neither options ({url | path, …}) nor a path such as '/items'`);
        }
        const settings = opts.settings && typeof opts.settings === 'object' ? opts.settings : {};
        const option = (name) => (settings[name] !== undefined && settings[name] !== null ? settings[name] : opts[name]);
        let url = opts.url;
        if (!url && opts.path !== undefined && opts.path !== null) {
            const given = String(opts.path);
            if (ABSOLUTE.test(given)) {
                url = given; // a full URL given as the path (Slingr's "Allow External URLs")
            } else {
                const base = opts.baseUrl || (state.config && state.config.baseUrl);
                if (!base) {
                    throw new Error(`${where}: the path ${shown(given)} needs a base URL (\`baseUrl\` in the options or the configuration); or give a full \`url\``);
                }
                url = String(base).replace(/\/+$/, '') + '/' + given.replace(/^\/+/, '');
            }
        }
        if (!url) throw new Error(`${where}: give \`url\` (or \`path\` on a base URL)`);
        url = String(url);
        if (!/^https?:\/\//i.test(url)) {
            throw new Error(`${where}: ${shown(url)} is not an http(s) URL; give a full URL or a path on a base URL`);
        }
        const headers = Object.assign({}, opts.headers || {});
        const auth = option('authorization');
        const digest = authorize(auth, headers, where);
        const timeout = Number(option('readTimeout') || option('connectionTimeout') || opts.timeout || 0);
        let request = {
            url,
            method,
            headers,
            params: opts.params || null,
            data: opts.body === undefined ? null : opts.body,
            timeout,
            followRedirects: option('followRedirects') !== false,
        };
        if (digest) request = Object.assign(request, { url: withParams(url, request.params), params: null });
        let answer = host('http', request);
        const challenge = digest && answer.response && answer.response.status === 401 && answer.response.headers['www-authenticate'];
        if (challenge && /^\s*digest\s/i.test(challenge)) {
            request.headers = Object.assign({}, headers, { Authorization: digestHeader(challenge, auth, method, request.url, where) });
            answer = host('http', request);
        }
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
        if (option('fullResponse')) return { status: response.status, headers: response.headers, body };
        return body;
    }

    const http = strict('dependencies.http', {});
    for (const method of ['get', 'post', 'put', 'patch', 'delete', 'head', 'options']) {
        http[method] = (options, body) => httpCall(method.toUpperCase(), options, body);
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
