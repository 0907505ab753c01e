"""The bank package's one exception tree (token and denomination errors are atm_msg.errors')."""


class BankError(Exception):
    """Base of every error the bank package raises on purpose."""


class ConfigError(BankError):
    """A configuration file or option is invalid; the message names the option."""


class StoreError(BankError):
    """The bank database failed or holds something inconsistent."""


class KeyStoreError(BankError):
    """A device key is missing, malformed or already provisioned."""
