"""modyard benchmarks: ``make bench`` runs them all; each prints one JSON line of figures."""
