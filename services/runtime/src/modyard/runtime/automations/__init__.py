"""Automations: Prisme.ai's declarative automation language, run by the runtime (see
docs/automations.md). ``program`` holds the workspace/app-instance tree and its isolation rules,
``interpreter`` runs instructions over it, ``definitions`` checks what users save."""
