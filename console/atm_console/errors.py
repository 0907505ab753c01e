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


class StoreError(ConsoleError):
    """The console database cannot be opened or is not a console database (corrupt, wrong file)."""


class BrokerUnavailableError(ConsoleError):
    """No MQTT broker answered at start (exit 3; configuration errors exit 2)."""


class NotSignedInError(AuthError):
    """No session cookie, or one the console does not know: the browser must sign in (HTTP 401)."""


class SessionExpiredError(AuthError):
    """The operator's session ended (idle or too old): the browser must sign in again (HTTP 401)."""
