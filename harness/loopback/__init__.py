"""The loopback Backpack exchange: REST + WebSocket on 127.0.0.1, a seeded market, fault hooks."""
