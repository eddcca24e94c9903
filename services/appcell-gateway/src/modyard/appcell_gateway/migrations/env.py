from modyard.appcell_gateway.models import metadata
from modyard.common.db.migrations import run_alembic_env

run_alembic_env(metadata)
