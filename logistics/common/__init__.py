"""What every planner shares: the one distance function, the MIP solver, the planner's errors."""
