"""A week in the region: the whole system run at high speed against a fault scenario, with simulated crews
and drivers acting through the dashboard, measured from the store and the outbox (`bench/region_week.py`)."""
