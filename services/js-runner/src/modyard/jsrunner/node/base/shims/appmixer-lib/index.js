'use strict';
// modyard's own stand-in for the parts of appmixer-lib that public connectors use: the
// package itself is published only as a git URL, so the runner cannot install it. Written from
// how connectors call these helpers, not from the original.

/**
 * Fetches a paged API until `nextPage` says stop (returns a negative number or nothing).
 *
 *   const aggregator = new PagingAggregator(
 *       (args, page, pageSize) => fetchOnePage(args, page, pageSize),
 *       (accumulator, chunk) => accumulator.concat(chunk.items),
 *       (accumulator, chunk, page, pageSize) => (chunk.hasMore ? page + 1 : -1),
 *   );
 *   const all = await aggregator.fetch(args, 1, 100);
 */
class PagingAggregator {
    constructor(fetchPage, aggregate, nextPage, initial) {
        if (typeof fetchPage !== 'function' || typeof aggregate !== 'function') {
            throw new TypeError('PagingAggregator needs a fetch and an aggregate function');
        }
        this.fetchPage = fetchPage;
        this.aggregate = aggregate;
        this.nextPage = nextPage || (() => -1);
        this.initial = initial;
    }

    async fetch(args, page, pageSize, limit) {
        let accumulator = this.initial === undefined ? [] : this.initial;
        let current = page === undefined ? 0 : page;
        // A guard against an API that never says it is done.
        for (let pages = 0; pages < 10000; pages += 1) {
            const chunk = await this.fetchPage(args, current, pageSize);
            accumulator = this.aggregate(accumulator, chunk, current, pageSize);
            if (limit !== undefined && Array.isArray(accumulator) && accumulator.length >= limit) {
                return accumulator.slice(0, limit);
            }
            const next = await this.nextPage(accumulator, chunk, current, pageSize);
            if (next === undefined || next === null || next === false || next < 0) break;
            current = next;
        }
        return accumulator;
    }
}

/** An HTTP failure carrying its status, which the runner reads to decide on a retry. */
class HttpError extends Error {
    constructor(message, status, body) {
        super(message);
        this.name = 'HttpError';
        this.status = status;
        this.statusCode = status;
        this.body = body;
        this.response = status === undefined ? undefined : { status, data: body };
    }
}

const util = { PagingAggregator, HttpError };

module.exports = { util, PagingAggregator, HttpError };
