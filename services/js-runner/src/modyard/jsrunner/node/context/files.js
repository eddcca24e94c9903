'use strict';
// Files stored by the platform per workspace: saveFileStream(name, buffer|string|stream),
// getFileReadStream(fileId), loadFile(fileId), getFileInfo(fileId). Bytes travel in chunks of
// CHUNK bytes (base64 in frames): neither side holds a whole file.

const { Readable } = require('stream');

const CHUNK = 256 * 1024;

async function* pieces(source) {
    if (typeof source === 'string' || Buffer.isBuffer(source) || source instanceof Uint8Array) {
        const buffer = Buffer.from(source);
        for (let at = 0; at < buffer.length; at += CHUNK) yield buffer.subarray(at, at + CHUNK);
        return;
    }
    if (!source || typeof source[Symbol.asyncIterator] !== 'function') {
        throw new TypeError('saveFileStream(name, content): content must be a Buffer, a string or a readable stream');
    }
    let pending = [];
    let size = 0;
    for await (const chunk of source) {
        const buffer = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk);
        pending.push(buffer);
        size += buffer.length;
        while (size >= CHUNK) {
            const all = Buffer.concat(pending);
            yield all.subarray(0, CHUNK);
            pending = [all.subarray(CHUNK)];
            size = pending[0].length;
        }
    }
    if (size > 0) yield Buffer.concat(pending);
}

function addFiles(context, call, rpc) {
    context.saveFileStream = async (filename, content, options) => {
        const contentType = (options && options.contentType) || undefined;
        const { fileId } = await rpc('file.begin', { filename, contentType });
        for await (const piece of pieces(content)) {
            await rpc('file.chunk', { fileId, data: piece.toString('base64') });
        }
        return rpc('file.end', { fileId });
    };
    context.getFileInfo = (fileId) => rpc('file.info', { fileId });
    context.getFileReadStream = async (fileId) => {
        // The first chunk is read now, so that a missing file rejects here (as Appmixer's does);
        // each later one when the reader wants more (one request in flight at a time).
        let first = await rpc('file.read', { fileId, seq: 0 });
        let seq = 1;
        return new Readable({
            read() {
                const take = (piece) => {
                    if (piece.data !== null) this.push(Buffer.from(piece.data, 'base64'));
                    if (piece.last) this.push(null);
                };
                if (first) {
                    const piece = first;
                    first = null;
                    take(piece);
                    return;
                }
                rpc('file.read', { fileId, seq: seq++ }).then(take, (err) => this.destroy(err));
            },
        });
    };
    context.loadFile = async (fileId) => {
        const parts = [];
        for await (const chunk of await context.getFileReadStream(fileId)) parts.push(chunk);
        return Buffer.concat(parts);
    };
}

module.exports = { addFiles };
