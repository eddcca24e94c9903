"""modyard registry: modules, immutable versions, archives, bundled schemas and format adapters"""
