"""Records of StreamPulse: source events and the windowed aggregates computed from them."""
