"""The one training loop (loop.py) and what it sets up: session, schedule, early stopping, probe."""
