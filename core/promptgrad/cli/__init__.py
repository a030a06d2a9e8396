"""The headless command line (main.py) and its progress display (progress.py)."""
