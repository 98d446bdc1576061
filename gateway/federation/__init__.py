"""Community nodes and their federation: signed facts replicated between peers over MQTT."""
