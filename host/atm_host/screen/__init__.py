"""The ATM's customer screen: a kiosk page served by the host that mirrors the journey state machine."""
