"""Many runs: sweeps, their engines, and the report over seeds."""
