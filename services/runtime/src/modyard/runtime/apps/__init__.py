"""Apps: a workspace published as a ``prismeai`` module, and app instances (its installations)
as the runtime runs them. See docs/automations.md."""
