'use strict';
// context.setTimeout(content, ms) → timeoutId, context.clearTimeout(timeoutId). The component is
// called again with messages.timeout = {content, timeoutId}: the runtime parks the message on
// its delay tiers; nothing waits here.

function addTimers(context, call, rpc) {
    if (call.port === 'timeout') {
        context.messages.timeout = Object.assign(context.messages.timeout || {}, {
            timeoutId: call.timeoutId || null,
        });
    }
    context.setTimeout = async (content, ms) => {
        const { id } = await rpc('timer.set', { content: content === undefined ? null : content, ms });
        return id;
    };
    context.clearTimeout = (timeoutId) => rpc('timer.clear', { id: timeoutId });
}

module.exports = { addTimers };
