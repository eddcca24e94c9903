"""Installing, configuring, upgrading and removing modules in a workspace.

An install resolves the whole dependency graph against the registry's index
(:mod:`modyard.installer.resolution`), then, in the caller's transaction, creates the root
installation and every missing dependency, records the dependency edges and the lock, writes the
initial storage (AppCell ``settings.local``) and the events. Nothing is written if any step refuses.
"""
