"""The XCA initiating gateway in the running service: fan-out, wiring (initiating.py)."""
