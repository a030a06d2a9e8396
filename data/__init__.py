"""Data sets bundled with promptgrad (importable as `promptgrad.data` so that wheels carry them)."""
