"""The planner's only door to the store, one module per planner: rows in as plain input data, plans out as
rows and outbox messages. The only modules of logistics that use the ORM."""
