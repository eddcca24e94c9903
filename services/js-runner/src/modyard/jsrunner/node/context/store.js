'use strict';
// context.store.*: the workspace's data stores. The members public connectors use are built;
// the rest reject naming the member.

function unsupported(member) {
    return async () => {
        const err = new Error(`context.store.${member} is not supported by modyard's JavaScript runner`);
        err.code = 'ERR_NOT_SUPPORTED';
        throw err;
    };
}

function addStore(context, call, rpc) {
    context.store = {
        get: (storeId, key) => rpc('store.get', { storeId, key }).then((v) => (v === null ? undefined : v)),
        set: (storeId, key, value) => rpc('store.set', { storeId, key, value: value === undefined ? null : value }),
        remove: (storeId, key) => rpc('store.remove', { storeId, key }),
        find: (storeId, options) => rpc('store.find', { storeId, options: options || {} }),
        count: (storeId, query) => rpc('store.count', { storeId, query: query || null }),
        registerWebhook: unsupported('registerWebhook'),
        unregisterWebhook: unsupported('unregisterWebhook'),
    };
}

module.exports = { addStore };
