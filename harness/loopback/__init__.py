"""The loopback Backpack exchange: REST + WebSocket on 127.0.0.1 fed by a MarketSource (the seeded market
or a recording), and fault hooks."""
