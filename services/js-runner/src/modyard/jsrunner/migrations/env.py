from modyard.common.db.migrations import run_alembic_env
from modyard.jsrunner.models import metadata

run_alembic_env(metadata)
