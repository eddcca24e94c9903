'use strict';
// The persistent context members are RPCs to the supervisor (modyard.jsrunner.context_api):
// a frame {t: 'rpc', id: <call>, rid, method, args} answered by {t: 'rpc-result', rid, result |
// error}. The supervisor knows which workspace, flow and node the call runs for; nothing sent
// here can name another.

class ContextError extends Error {
    constructor(message, code) {
        super(message);
        this.name = 'ContextError';
        this.code = code;
    }
}

function createRpc(send) {
    const pending = new Map();
    let nextRid = 1;
    return {
        call(callId, method, args) {
            const rid = nextRid++;
            return new Promise((resolve, reject) => {
                pending.set(rid, { resolve, reject });
                send({ t: 'rpc', id: callId, rid, method, args: args || {} });
            });
        },
        onResult(frame) {
            const waiting = pending.get(frame.rid);
            if (!waiting) return;
            pending.delete(frame.rid);
            if (frame.error) {
                waiting.reject(new ContextError(frame.error.message, frame.error.code));
            } else {
                waiting.resolve(frame.result === undefined ? null : frame.result);
            }
        },
    };
}

module.exports = { createRpc, ContextError };
