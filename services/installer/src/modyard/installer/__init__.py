"""modyard installer: workspaces, installations, resolved dependency locks, configs, secrets and ACL rules"""
