"""The operator console: watches the ATM fleet over MQTT and sends it signed remote commands."""
