"""Slingr packages on the JavaScript runner (docs/slingr.md): flow steps, scripts and listeners
with Slingr's synchronous globals, in worker threads of the sandboxed child."""
