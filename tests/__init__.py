"""StreamPulse tests."""
