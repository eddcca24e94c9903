'use strict';
// context.staticCache: get/set(key, value, ttl ms)/remove, kept in this child's memory (one
// child per module version, as Appmixer keeps it per engine process), separate per workspace
// (the child serves several), bounded in entries, each with a ttl.

const MAX_ENTRIES = 1000;
const DEFAULT_TTL_MS = 60 * 60 * 1000;
const entries = new Map();

function addStaticCache(context, call) {
    const prefix = `${call.cacheScope || ''}\u0000`;
    context.staticCache = {
        get: async (key) => {
            const entry = entries.get(prefix + key);
            if (!entry) return undefined;
            if (entry.expires <= Date.now()) {
                entries.delete(prefix + key);
                return undefined;
            }
            return entry.value;
        },
        set: async (key, value, ttl) => {
            if (entries.size >= MAX_ENTRIES) {
                // Forget the oldest entry (a Map keeps insertion order).
                entries.delete(entries.keys().next().value);
            }
            const ms = typeof ttl === 'number' && ttl > 0 ? ttl : DEFAULT_TTL_MS;
            entries.delete(prefix + key);
            entries.set(prefix + key, { value, expires: Date.now() + ms });
        },
        remove: async (key) => {
            entries.delete(prefix + key);
        },
    };
}

module.exports = { addStaticCache };
