"""The MQTT contract between bank, ATM host and console: schemas, topics, reasons, tokens, signed commands.

One package, installed on every side (requirements/contract.txt): the host and the console import it and
never the bank's package. Pure CPython (paho-mqtt, pydantic, cryptography); the MicroPython wire protocol
to the dispenser is `atm_wire`, beside it.
"""
