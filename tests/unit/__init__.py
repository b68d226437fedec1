"""Unit tests: pure units, no broker or registry."""
