"""Registered on import by sr_kd/__init__."""
