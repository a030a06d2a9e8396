"""runs/<name>/ on disk: the run folder and the facts recorded once."""
