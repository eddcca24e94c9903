'use strict';
// context.callAppmixer: the part of Appmixer's own API that maps onto modyard (data stores), an
// error naming the endpoint for the rest. componentStaticCall (calling another component's
// static method through the Appmixer engine) has no counterpart: it rejects naming the member.

function addAppmixerCalls(context, call, rpc) {
    context.callAppmixer = (options) => {
        const opts = options || {};
        return rpc('appmixer.call', {
            endPoint: opts.endPoint,
            method: opts.method,
            body: opts.body === undefined ? null : opts.body,
            qs: opts.qs || null,
        });
    };
    context.componentStaticCall = async (componentType) => {
        const err = new Error(
            `context.componentStaticCall(${JSON.stringify(componentType)}) is not supported by modyard's JavaScript runner`
        );
        err.code = 'ERR_NOT_SUPPORTED';
        throw err;
    };
}

module.exports = { addAppmixerCalls };
