"""The console package's one exception tree."""


class ConsoleError(Exception):
    """Base of every error the console package raises on purpose."""


class ConfigError(ConsoleError):
    """A configuration option or file is invalid; the message names the option."""


class AuthError(ConsoleError):
    """Login refused, session missing or expired, or CSRF token wrong."""


class CommandError(ConsoleError):
    """A remote command was refused before it left the console (bad arguments, unknown ATM, no key)."""


class AuditError(ConsoleError):
    """The audit trail is unreadable or its hash chain is broken."""
