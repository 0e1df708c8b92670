"""Record, replay, fault scenarios, parity and bisect for the Backpack feed."""
