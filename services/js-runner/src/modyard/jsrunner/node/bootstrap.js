'use strict';
// The sandboxed side of the JavaScript runner: one process per module version, started by the
// supervisor (modyard.jsrunner.sandbox) under Node's permission model, in a user and network
// namespace with an empty environment. It loads the module's components and runs their
// `receive` (or `tick`) with an Appmixer-shaped `context`.
//
// The supervisor and this process talk over stdin/stdout with length-prefixed JSON frames
// (4-byte big-endian length, then UTF-8 JSON). Nothing else may write to stdout: console output
// and `context.log` become `log` frames. Network access exists only as `context.httpRequest`,
// an RPC the supervisor performs under the platform's egress policy (this namespace has no
// route out).
//
// argv: node bootstrap.js <require path>[:<require path>...]

const Module = require('module');
const { Readable } = require('stream');
const { startProxy } = require('./proxy');
const { extendContext, lifecycleMethod } = require('./lifecycle');
const { runAuthCall } = require('./auth_calls');

// Where `require` finds the base layer (lodash, form-data, moment-timezone, bluebird) and the
// appmixer-lib shim when the module does not bring its own: NODE_PATH, read once here because
// the environment is otherwise empty.
process.env.NODE_PATH = process.argv[2] || '';
Module._initPaths();

const stdout = process.stdout;
const writeFrame = stdout.write.bind(stdout);

function send(frame) {
    const body = Buffer.from(JSON.stringify(frame), 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length, 0);
    writeFrame(Buffer.concat([head, body]));
}

// Calls in progress, so that console output can be attributed to the only one running when
// there is exactly one (the common case).
const running = new Set();

function logFrame(level, args, callId) {
    const parts = args.map((arg) => {
        if (typeof arg === 'string') return arg;
        if (arg instanceof Error) return arg.stack || String(arg);
        try {
            return JSON.stringify(arg);
        } catch (err) {
            return String(arg);
        }
    });
    const id = callId !== undefined ? callId : running.size === 1 ? [...running][0] : null;
    send({ t: 'log', id, level, msg: parts.join(' ').slice(0, 8192) });
}

// stdout belongs to the protocol: module output goes to the log instead.
for (const [name, level] of [
    ['log', 'info'],
    ['info', 'info'],
    ['debug', 'debug'],
    ['warn', 'warn'],
    ['error', 'error'],
]) {
    console[name] = (...args) => logFrame(level, args);
}
stdout.write = (chunk) => {
    logFrame('info', [String(chunk)]);
    return true;
};

class CancelError extends Error {
    constructor(message) {
        super(message || 'cancelled');
        this.name = 'CancelError';
    }
}

// -- httpRequest: an RPC to the supervisor ------------------------------------------------------

const httpPending = new Map();
let nextRid = 1;

function axiosError(message, code, response) {
    const err = new Error(message);
    err.name = 'AxiosError';
    err.isAxiosError = true;
    err.code = code;
    if (response) {
        err.response = response;
        err.status = response.status;
    }
    return err;
}

// responseType values whose body is bytes: axios gives a Buffer for 'arraybuffer' (and 'blob'
// in Node), a readable stream for 'stream'.
const BINARY_RESPONSES = new Set(['arraybuffer', 'blob', 'stream']);

function parseBody(response, headers, responseType) {
    if (BINARY_RESPONSES.has(responseType)) {
        const bytes = Buffer.from(response.bodyBase64 || '', 'base64');
        return responseType === 'stream' ? Readable.from([bytes]) : bytes;
    }
    const text = response.body || '';
    if (responseType === 'text') return text;
    const type = String(headers['content-type'] || '');
    if (type.includes('json') || responseType === 'json' || /^\s*[[{]/.test(text)) {
        try {
            return JSON.parse(text);
        } catch (err) {
            return text;
        }
    }
    return text;
}

function hasHeader(headers, name) {
    return Object.keys(headers).some((key) => key.toLowerCase() === name);
}

function collect(stream) {
    return new Promise((resolve, reject) => {
        const chunks = [];
        stream.on('data', (chunk) => chunks.push(Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk)));
        stream.on('end', () => resolve(Buffer.concat(chunks)));
        stream.on('error', reject);
        if (typeof stream.resume === 'function') stream.resume();
    });
}

// The request body as axios sends it: a string as is, bytes (Buffer, typed arrays, ArrayBuffer,
// a readable stream) raw, URLSearchParams form-urlencoded, form-data's FormData multipart (its
// boundary header), anything else as JSON. Bytes travel base64 in the frame.
async function requestBody(data, headers) {
    if (data === undefined || data === null) return {};
    if (typeof data === 'string') return { data };
    if (data instanceof URLSearchParams) {
        if (!hasHeader(headers, 'content-type')) {
            headers['Content-Type'] = 'application/x-www-form-urlencoded;charset=utf-8';
        }
        return { data: data.toString() };
    }
    if (typeof data.getBoundary === 'function' && typeof data.getHeaders === 'function') {
        for (const [name, value] of Object.entries(data.getHeaders())) {
            if (!hasHeader(headers, name.toLowerCase())) headers[name] = value;
        }
        return { dataBase64: (await collect(data)).toString('base64') };
    }
    let bytes = null;
    if (Buffer.isBuffer(data) || ArrayBuffer.isView(data)) {
        bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    } else if (data instanceof ArrayBuffer) {
        bytes = Buffer.from(data);
    } else if (typeof data.pipe === 'function' && typeof data.on === 'function') {
        bytes = await collect(data);
    }
    if (bytes !== null) {
        if (!hasHeader(headers, 'content-type')) headers['Content-Type'] = 'application/octet-stream';
        return { dataBase64: bytes.toString('base64') };
    }
    return { data };
}

function makeHttpRequest(callId) {
    const request = async (configOrUrl, maybeConfig) => {
        const config =
            typeof configOrUrl === 'string'
                ? Object.assign({}, maybeConfig, { url: configOrUrl })
                : Object.assign({}, configOrUrl);
        if (!config.url) throw axiosError('httpRequest needs a url', 'ERR_INVALID_URL');
        const headers = Object.assign({}, config.headers || {});
        if (config.auth && typeof config.auth === 'object') {
            // axios: HTTP Basic from `auth`, over any Authorization header given.
            for (const key of Object.keys(headers)) {
                if (key.toLowerCase() === 'authorization') delete headers[key];
            }
            const { username = '', password = '' } = config.auth;
            headers.Authorization =
                'Basic ' + Buffer.from(`${username}:${password}`, 'utf8').toString('base64');
        }
        const body = await requestBody(config.data, headers);
        const rid = nextRid++;
        return new Promise((resolve, reject) => {
            httpPending.set(rid, { resolve, reject, config });
            send({
                t: 'http',
                id: callId,
                rid,
                request: {
                    url: String(config.url),
                    method: String(config.method || 'get').toUpperCase(),
                    headers,
                    params: config.params || null,
                    data: body.data === undefined ? null : body.data,
                    dataBase64: body.dataBase64,
                    binary: BINARY_RESPONSES.has(config.responseType) || undefined,
                    timeout: config.timeout || 0,
                },
            });
        });
    };
    for (const method of ['get', 'delete', 'head', 'options']) {
        request[method] = (url, config) => request(Object.assign({}, config, { url, method }));
    }
    for (const method of ['post', 'put', 'patch']) {
        request[method] = (url, data, config) =>
            request(Object.assign({}, config, { url, method, data }));
    }
    return request;
}

function onHttpResult(frame) {
    const pending = httpPending.get(frame.rid);
    if (!pending) return;
    httpPending.delete(frame.rid);
    if (frame.error) {
        pending.reject(axiosError(frame.error.message, frame.error.code || 'ERR_NETWORK'));
        return;
    }
    const headers = frame.response.headers || {};
    const response = {
        status: frame.response.status,
        statusText: frame.response.statusText || '',
        headers,
        data: parseBody(frame.response, headers, pending.config.responseType),
        config: pending.config,
    };
    const validate = pending.config.validateStatus || ((status) => status >= 200 && status < 300);
    if (validate(response.status)) {
        pending.resolve(response);
    } else {
        const code = response.status >= 500 ? 'ERR_BAD_RESPONSE' : 'ERR_BAD_REQUEST';
        pending.reject(
            axiosError(`Request failed with status code ${response.status}`, code, response)
        );
    }
}

// State, locks, timers, data stores, files, staticCache, callAppmixer: RPCs (context/).
const persistent = require('./context').persistentContext(send);

// -- calls ------------------------------------------------------------------------------------

function loadComponent(entry) {
    // Node caches the module: the first call of a component pays for loading it, the rest not.
    // eslint-disable-next-line global-require, import/no-dynamic-require
    return require(entry);
}

function makeContext(call, outputs) {
    const messages = {};
    if (call.port) {
        messages[call.port] = {
            content: call.content,
            originalContent: call.content,
            correlationId: call.correlationId || null,
        };
    }
    const add = (port, value) => {
        const name = port || 'out';
        (outputs[name] = outputs[name] || []).push(value);
    };
    const auth = call.auth || {};
    const context = {
        messages,
        properties: call.properties || {},
        // The account over the service configuration; config: the configuration alone.
        auth,
        config: call.config || {},
        id: call.contextId || null,
        componentId: call.nodeId || null,
        flowId: call.flowId || null,
        flowDescriptor: call.flowDescriptor || {},
        CancelError,
        httpRequest: makeHttpRequest(call.id),
        log: (...args) => logFrame('info', args, call.id),
        sendJson: async (data, port) => add(port, data === undefined ? null : data),
        sendArray: async (items, port) => {
            if (!Array.isArray(items)) throw new TypeError('sendArray takes an array');
            for (const item of items) add(port, item);
        },
    };
    return persistent.extend(context, call);
}

function describe(err) {
    if (err === null || err === undefined || typeof err !== 'object') {
        return { message: String(err), name: 'Error' };
    }
    const status =
        (err.response && err.response.status) || err.status || err.statusCode || undefined;
    return {
        message: String(err.message || err).slice(0, 4096),
        name: String(err.name || 'Error'),
        code: typeof err.code === 'string' ? err.code : undefined,
        status: Number.isInteger(status) ? status : undefined,
        cancel: err instanceof CancelError || err.name === 'CancelError',
    };
}

async function onCall(call) {
    const outputs = {};
    running.add(call.id);
    try {
        if (call.method === 'auth') {
            // An account's auth.js (auth_calls.js), asked by the installer.
            const result = await runAuthCall(call, makeHttpRequest(call.id), (...args) =>
                logFrame('info', args, call.id)
            );
            send({ t: 'done', id: call.id, outputs: { auth: [result] } });
            return;
        }
        const component = loadComponent(call.entry);
        const method = lifecycleMethod(call);
        const answer = {};
        if (!component || typeof component[method] !== 'function') {
            // Appmixer components need not export start/stop: nothing to do then.
            if (method === 'start' || method === 'stop') {
                send({ t: 'done', id: call.id, outputs });
                return;
            }
            throw new TypeError(`${call.entry} exports no ${method}() function`);
        }
        await component[method](extendContext(makeContext(call, outputs), call, answer));
        send({ t: 'done', id: call.id, outputs, response: answer.response });
    } catch (err) {
        send({ t: 'failed', id: call.id, error: describe(err) });
    } finally {
        running.delete(call.id);
    }
}

// A promise rejected with nobody listening fails no call by itself (the call's own promise
// decides): it is reported, and the process keeps serving.
process.on('unhandledRejection', (reason) => {
    logFrame('error', ['unhandled rejection:', reason]);
});

// -- the frame reader -------------------------------------------------------------------------

let buffered = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    while (buffered.length >= 4) {
        const size = buffered.readUInt32BE(0);
        if (buffered.length < 4 + size) break;
        const frame = JSON.parse(buffered.subarray(4, 4 + size).toString('utf8'));
        buffered = buffered.subarray(4 + size);
        if (frame.t === 'call') onCall(frame);
        else if (frame.t === 'http-result') onHttpResult(frame);
        else if (frame.t === 'rpc-result') persistent.onResult(frame);
    }
});
process.stdin.on('end', () => process.exit(0));

// argv[3]: the supervisor's proxy socket for this child (HTTP(S)_PROXY for npm SDKs).
startProxy(process.argv[3]).then((proxy) => {
    send({ t: 'ready', pid: process.pid, node: process.version, proxy });
});
