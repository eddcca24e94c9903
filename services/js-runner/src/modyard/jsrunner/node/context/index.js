'use strict';
// The persistent members of the Appmixer context (docs/js-runner.md, "Context API"), added to
// the context bootstrap.js builds for each call.

const { createRpc, ContextError } = require('./rpc');
const { addState } = require('./state');
const { addLock } = require('./lock');
const { addTimers } = require('./timers');
const { addStore } = require('./store');
const { addFiles } = require('./files');
const { addStaticCache } = require('./static_cache');
const { addAppmixerCalls } = require('./appmixer_calls');

function persistentContext(send) {
    const rpc = createRpc(send);
    return {
        onResult: rpc.onResult,
        extend(context, call) {
            const bound = (method, args) => rpc.call(call.id, method, args);
            addState(context, call, bound);
            addLock(context, call, bound);
            addTimers(context, call, bound);
            addStore(context, call, bound);
            addFiles(context, call, bound);
            addStaticCache(context, call);
            addAppmixerCalls(context, call, bound);
            return context;
        },
    };
}

module.exports = { persistentContext, ContextError };
