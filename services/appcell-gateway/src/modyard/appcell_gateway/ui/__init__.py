"""The UI controller's routes and slots."""
