"""An example AppCell cell: NewResellerClub's Domain, NS and Contact resources against an
in-memory vendor. ``module/`` holds its five installation files and schemas; ``cell.py`` the
worker (``modyard cell run examples.resellerclub_cell.cell:cell``)."""
