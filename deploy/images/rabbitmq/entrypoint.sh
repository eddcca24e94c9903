#!/bin/sh
# The public rabbitmq image's RABBITMQ_DEFAULT_USER / _PASS / _VHOST as rabbitmq.conf settings.
# They apply when the node starts on an empty database, as there.
set -eu

{
    # The default user may connect from other containers, not only from localhost.
    echo "loopback_users = none"
    if [ -n "${RABBITMQ_DEFAULT_USER:-}" ]; then echo "default_user = $RABBITMQ_DEFAULT_USER"; fi
    if [ -n "${RABBITMQ_DEFAULT_PASS:-}" ]; then echo "default_pass = $RABBITMQ_DEFAULT_PASS"; fi
    if [ -n "${RABBITMQ_DEFAULT_VHOST:-}" ]; then echo "default_vhost = $RABBITMQ_DEFAULT_VHOST"; fi
} >"$RABBITMQ_CONFIG_FILE"
chmod 600 "$RABBITMQ_CONFIG_FILE"

exec "$@"
