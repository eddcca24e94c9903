'use strict';
// context.state / saveState / loadState / stateGet / stateSet / stateUnset / stateClear /
// stateInc / stateAddToSet / stateRemoveFromSet, and the same members under context.flow and context.service (other scopes).

function scoped(rpc, scope) {
    return {
        stateGet: (key) => rpc('state.get', { scope, key }).then((v) => (v === null ? undefined : v)),
        stateSet: (key, value) => rpc('state.set', { scope, key, value: value === undefined ? null : value }),
        stateUnset: (key) => rpc('state.unset', { scope, key }),
        stateClear: () => rpc('state.clear', { scope }),
        stateInc: (key, by) => rpc('state.inc', { scope, key, by: by === undefined ? 1 : by }),
        stateAddToSet: (key, value) => rpc('state.addToSet', { scope, key, value: value === undefined ? null : value }),
        stateRemoveFromSet: (key, value) => rpc('state.removeFromSet', { scope, key, value: value === undefined ? null : value }),
    };
}

function addState(context, call, rpc) {
    // As in Appmixer: the node's state is loaded before the call (when the component reads it).
    context.state = call.state || {};
    Object.assign(context, scoped(rpc, 'node'));
    context.loadState = async () => {
        context.state = (await rpc('state.load', {})) || {};
        return context.state;
    };
    context.saveState = async (state) => {
        if (state !== undefined) context.state = state;
        await rpc('state.save', { state: context.state || {} });
    };
    context.flow = Object.assign(context.flow || {}, scoped(rpc, 'flow'));
    context.service = Object.assign(context.service || {}, scoped(rpc, 'service'));
}

module.exports = { addState };
