"""Accounts: a user's credentials for a third-party service (an Appmixer ``auth.js`` service),
kept encrypted in their workspace and handed to components as ``context.auth``."""
