'use strict';
// What the context offers beyond `receive`: webhook components and the flow's lifecycle.
//
// - A webhook component (`webhook: true`) gets the caller's request as
//   `messages.webhook.content` = {method, headers, query, data}, and answers the caller with
//   `context.response(body, status, headers)` (once; the runtime waits for it up to its timeout
//   and otherwise answers with its documented default).
// - `context.getWebhookUrl()` is the URL the runtime serves for this node (also in `start`,
//   where a component registers it with the vendor).
// - `start` / `stop` run when the flow starts and stops; `tick` at the polling interval.

const METHODS = new Set(['receive', 'tick', 'start', 'stop']);

function lifecycleMethod(call) {
    return METHODS.has(call.method) ? call.method : 'receive';
}

function extendContext(context, call, answer) {
    context.getWebhookUrl = () => {
        if (!call.webhookUrl) throw new Error('this component has no webhook URL (is it webhook: true?)');
        return call.webhookUrl;
    };
    context.response = async (body, status, headers) => {
        if (answer.response) throw new Error('context.response() was already called for this request');
        const code = status === undefined ? 200 : Number(status);
        if (!Number.isInteger(code) || code < 100 || code > 599) {
            throw new TypeError(`context.response() takes an HTTP status (100-599), not ${status}`);
        }
        const shown = {};
        for (const [name, value] of Object.entries(headers || {})) shown[String(name)] = String(value);
        answer.response = { body: body === undefined ? null : body, status: code, headers: shown };
    };
    return context;
}

module.exports = { extendContext, lifecycleMethod };
