import modyard.runtime.automations.models  # its tables are in this schema too
import modyard.runtime.egress.models  # the workspaces' egress allow-lists
import modyard.runtime.webhooks.models  # noqa: F401 - its tables are in this schema too
from modyard.common.db.migrations import run_alembic_env
from modyard.runtime.models import metadata

run_alembic_env(metadata)
