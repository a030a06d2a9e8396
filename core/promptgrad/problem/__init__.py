"""What is learned: example pairs, their splits, and the task library."""
