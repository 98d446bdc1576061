#!/bin/sh
# As the official eclipse-mosquitto entrypoint: give /mosquitto to user mosquitto, then run the command.
set -e
if [ "$(id -u)" = 0 ] && [ -d /mosquitto ]; then
    chown -R mosquitto:mosquitto /mosquitto || true
fi
exec "$@"
