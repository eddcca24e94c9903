'use strict';
// HTTP(S)_PROXY for the npm SDKs a module brings (axios, request, googleapis): they honour these
// variables, and this namespace has no route out. A listener on this namespace's own loopback
// (brought up by the supervisor's `ip link set lo up` before Node started) pipes every
// connection to the Unix socket the supervisor serves for this child; the supervisor performs
// the request (or CONNECT tunnel) under the platform's egress policy (egress_proxy.py).
// Node's own `fetch` ignores these variables: it fails closed, use context.httpRequest.

const net = require('net');

function startProxy(socketPath) {
    if (!socketPath) return Promise.resolve(null);
    return new Promise((resolve) => {
        const server = net.createServer((client) => {
            const upstream = net.connect(socketPath);
            const close = () => {
                client.destroy();
                upstream.destroy();
            };
            client.on('error', close);
            upstream.on('error', close);
            client.pipe(upstream);
            upstream.pipe(client);
        });
        // Without a loopback (no `ip` here), SDKs fail closed as before: not a start failure.
        server.on('error', () => resolve(null));
        server.listen(0, '127.0.0.1', () => {
            const port = server.address().port;
            const url = `http://127.0.0.1:${port}`;
            for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy']) {
                process.env[name] = url;
            }
            process.env.NO_PROXY = '';
            process.env.no_proxy = '';
            server.unref();
            // The loopback comes up beside Node's start: ready once a connection gets through
            // (a few ms at most; after a second, SDKs fail closed as without a proxy).
            const deadline = Date.now() + 1000;
            const probe = () => {
                const socket = net.connect(port, '127.0.0.1');
                socket.on('connect', () => {
                    socket.destroy();
                    resolve(url);
                });
                socket.on('error', () => {
                    socket.destroy();
                    if (Date.now() > deadline) resolve(null);
                    else setTimeout(probe, 2);
                });
            };
            probe();
        });
    });
}

module.exports = { startProxy };
