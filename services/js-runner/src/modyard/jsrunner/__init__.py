"""modyard's JavaScript runner: Appmixer components in sandboxed Node.js processes."""
