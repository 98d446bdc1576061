"""The store: models, migrations, and one module per lifecycle (tasks, deliveries, stock, outbox)."""
