"""The ATM host's link to the bank: the one MQTT client, the outbox, offline token checks."""
