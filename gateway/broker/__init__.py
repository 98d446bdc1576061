"""Broker administration: the embedded broker, broker accounts and files, community bridges."""
