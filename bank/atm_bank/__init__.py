"""Bank side of the cardless ATM: QR tokens, authorization, limits, abuse controls, ledger, MQTT workers."""
