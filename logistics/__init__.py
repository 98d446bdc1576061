"""Planning for the network: surplus allocation now; routing and repair assignment build on it."""
