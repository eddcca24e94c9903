"""Slingr packages' HTTP listeners (``webhook``/``webhookSync``), one URL per installation."""
