"""modyard runtime: flows, triggers, executions, retries, the dead-letter store and system webhooks"""
