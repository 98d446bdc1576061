"""The MQTT contract: topics, payloads and validation (stdlib only), the client factory, the sample region."""
