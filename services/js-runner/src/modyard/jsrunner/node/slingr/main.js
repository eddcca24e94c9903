'use strict';
// The sandboxed process of a Slingr package version (docs/slingr.md). Same frames with the
// supervisor as node/bootstrap.js (length-prefixed JSON on stdin/stdout: call, done, failed,
// log, http, rpc), same sandbox (namespaces, permission model, empty environment, heap cap).
//
// Slingr's platform APIs are synchronous (`dependencies.http.get(...)` returns the response),
// while everything this process may reach is an asynchronous frame to the supervisor. Package
// code therefore runs in worker threads: a worker posts a host call here and blocks in
// `Atomics.wait` on a SharedArrayBuffer until this thread has written the answer into it. This
// thread never runs package code, so it stays free to enforce the per-script time limit
// (`worker.terminate()` stops even `while (true) {}`) and a worker's heap limit
// (`resourceLimits`) fails only the call that blew it.
//
// argv: node main.js <require paths> <proxy socket> <limits JSON>

const path = require('path');
const { Worker } = require('worker_threads');

const limits = Object.assign(
    { timeoutMs: 30000, workers: 4, heapMb: 64, bufferBytes: 8 * 1024 * 1024 },
    JSON.parse(process.argv[4] || '{}')
);

const stdout = process.stdout;
const writeFrame = stdout.write.bind(stdout);

function send(frame) {
    const body = Buffer.from(JSON.stringify(frame), 'utf8');
    const head = Buffer.alloc(4);
    head.writeUInt32BE(body.length, 0);
    writeFrame(Buffer.concat([head, body]));
}

function log(level, msg, callId) {
    send({ t: 'log', id: callId === undefined ? null : callId, level, msg: String(msg).slice(0, 8192) });
}

for (const [name, level] of [['log', 'info'], ['info', 'info'], ['debug', 'debug'], ['warn', 'warn'], ['error', 'error']]) {
    console[name] = (...args) => log(level, args.map(String).join(' '));
}
stdout.write = (chunk) => {
    log('info', String(chunk));
    return true;
};

// -- workers ----------------------------------------------------------------------------------

const slots = []; // {worker, ctrl, data, call}
const queue = [];
let nextRid = 1;
const hostPending = new Map(); // rid -> slot

function answerWorker(slot, value) {
    // ctrl[0]: 0 while the worker waits, 1 once the answer is in; ctrl[1]: its byte length.
    let bytes = Buffer.from(JSON.stringify(value === undefined ? null : value), 'utf8');
    if (bytes.length > slot.data.length) {
        bytes = Buffer.from(
            JSON.stringify({ error: { message: `the answer is larger than ${slot.data.length} bytes`, code: 'ERR_RESPONSE_TOO_LARGE' } }),
            'utf8'
        );
    }
    slot.data.set(bytes, 0);
    Atomics.store(slot.ctrl, 1, bytes.length);
    Atomics.store(slot.ctrl, 0, 1);
    Atomics.notify(slot.ctrl, 0);
}

function finish(slot, frame) {
    const call = slot.call;
    if (!call) return;
    clearTimeout(call.timer);
    slot.call = null;
    send(Object.assign({ id: call.id }, frame));
    pump();
}

function replace(slot, error) {
    // The worker is gone (terminated past its limit, out of memory, crashed): its call fails
    // with `error`, a fresh worker takes its place.
    const call = slot.call;
    const index = slots.indexOf(slot);
    if (index >= 0) slots.splice(index, 1);
    for (const [rid, waiting] of hostPending) if (waiting === slot) hostPending.delete(rid);
    if (call) {
        clearTimeout(call.timer);
        slot.call = null;
        send({ t: 'failed', id: call.id, error });
    }
    slots.push(spawn());
    pump();
}

function spawn() {
    const shared = new SharedArrayBuffer(8 + limits.bufferBytes);
    const slot = {
        ctrl: new Int32Array(shared, 0, 2),
        data: new Uint8Array(shared, 8),
        call: null,
        gone: false,
    };
    slot.worker = new Worker(path.join(__dirname, 'worker.js'), {
        workerData: { shared, requirePaths: process.argv[2] || '' },
        resourceLimits: { maxOldGenerationSizeMb: limits.heapMb, maxYoungGenerationSizeMb: 16 },
        stdout: false,
        stderr: false,
    });
    slot.worker.on('message', (message) => onWorkerMessage(slot, message));
    slot.worker.on('error', (err) => {
        if (slot.gone) return;
        slot.gone = true;
        const memory = err && err.code === 'ERR_WORKER_OUT_OF_MEMORY';
        replace(slot, {
            message: memory
                ? `the script used more than its ${limits.heapMb} MiB of memory and was stopped`
                : `the script's worker failed: ${(err && err.message) || err}`,
            name: 'Error',
            code: memory ? 'ERR_SCRIPT_MEMORY' : undefined,
        });
    });
    slot.worker.on('exit', () => {
        if (slot.gone) return;
        slot.gone = true;
        replace(slot, { message: "the script's worker exited", name: 'Error' });
    });
    return slot;
}

function onWorkerMessage(slot, message) {
    const call = slot.call;
    if (message.t === 'log') {
        log(message.level, message.msg, call ? call.id : undefined);
    } else if (message.t === 'host') {
        if (!call) return answerWorker(slot, { error: { message: 'no call is running' } });
        const rid = nextRid++;
        hostPending.set(rid, slot);
        if (message.method === 'http') {
            send({ t: 'http', id: call.id, rid, request: message.args });
        } else {
            send({ t: 'rpc', id: call.id, rid, method: message.method, args: message.args || {} });
        }
    } else if (message.t === 'done') {
        finish(slot, { t: 'done', outputs: message.outputs, response: message.response });
    } else if (message.t === 'failed') {
        finish(slot, { t: 'failed', error: message.error });
    }
}

function onHostResult(frame) {
    const slot = hostPending.get(frame.rid);
    if (!slot) return;
    hostPending.delete(frame.rid);
    answerWorker(slot, frame);
}

function timeLimit() {
    return {
        message: `the script did not finish within its ${limits.timeoutMs / 1000} s limit and was stopped`,
        name: 'Error',
        code: 'ERR_SCRIPT_TIMEOUT',
    };
}

function expire(call) {
    // Past the limit, counted from the call's arrival (waiting for a free worker counts): the
    // supervisor's own deadline for the call comes a margin later, so the call always ends
    // here, classified, rather than with the whole child killed.
    const slot = slots.find((candidate) => candidate.call === call);
    if (!slot) {
        const index = queue.indexOf(call);
        if (index < 0) return;
        queue.splice(index, 1);
        const error = timeLimit();
        error.message += ` (it waited for one of the package's ${limits.workers} workers)`;
        send({ t: 'failed', id: call.id, error });
        return;
    }
    if (slot.gone) return;
    // Stop the worker wherever it is (a loop, a host call's wait), fail the call.
    slot.gone = true;
    slot.worker.terminate();
    replace(slot, timeLimit());
}

function pump() {
    while (queue.length) {
        const slot = slots.find((candidate) => !candidate.call && !candidate.gone);
        if (!slot) return;
        const call = queue.shift();
        slot.call = call;
        slot.worker.postMessage({ t: 'call', call: call.frame });
    }
}

function onCall(frame) {
    const call = { id: frame.id, frame };
    call.timer = setTimeout(() => expire(call), limits.timeoutMs);
    queue.push(call);
    pump();
}

for (let i = 0; i < limits.workers; i += 1) slots.push(spawn());

let buffered = Buffer.alloc(0);
process.stdin.on('data', (chunk) => {
    buffered = buffered.length ? Buffer.concat([buffered, chunk]) : chunk;
    while (buffered.length >= 4) {
        const size = buffered.readUInt32BE(0);
        if (buffered.length < 4 + size) break;
        const frame = JSON.parse(buffered.subarray(4, 4 + size).toString('utf8'));
        buffered = buffered.subarray(4 + size);
        if (frame.t === 'call') onCall(frame);
        else if (frame.t === 'http-result' || frame.t === 'rpc-result') onHostResult(frame);
    }
});
process.stdin.on('end', () => process.exit(0));

// No SDK proxy: Slingr code has no npm packages, only dependencies.http (a host call).
send({ t: 'ready', pid: process.pid, node: process.version, proxy: null });
