from modyard.common.db.migrations import run_alembic_env
from modyard.gateway.models import metadata

run_alembic_env(metadata)
