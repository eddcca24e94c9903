"""Modules and their versions: publishing, reading the catalogue, archives and yanking."""
