"""Device side of Rhizome: the client a sensor box runs and the region simulator (stdlib, paho, contract)."""
