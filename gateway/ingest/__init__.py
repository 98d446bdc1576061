"""The gateway process: subscribe, validate, store readings, detect faults, publish the outbox."""
