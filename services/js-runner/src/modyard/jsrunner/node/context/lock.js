'use strict';
// context.lock(name, {ttl, retryDelay, maxRetryCount}) → {unlock(), extend(ttl)}. Released by
// the supervisor when the call ends, whatever the component did.

function addLock(context, call, rpc) {
    context.lock = async (name, options) => {
        const opts = options || {};
        await rpc('lock.acquire', {
            name,
            ttl: opts.ttl,
            retryDelay: opts.retryDelay,
            maxRetryCount: opts.maxRetryCount,
        });
        let held = true;
        return {
            unlock: async () => {
                if (!held) return;
                held = false;
                await rpc('lock.release', { name });
            },
            extend: (ttl) => rpc('lock.extend', { name, ttl }),
        };
    };
}

module.exports = { addLock };
