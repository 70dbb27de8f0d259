"""What every command gets: the output streams, the output format and the AWS clients.

``main`` builds one :class:`Context` from the global options; the clients
are made on first use, so ``--help``, ``deploy --dry-run`` (which makes no
call) and the local-mode commands never need credentials. All clients come
from one :class:`~supervisor.aws.ClientFactory` over one boto3 session
(``--profile``, ``--region``); ``--endpoint-url`` is used by every client
of the default credentials, otherwise boto3 resolves the endpoint itself
(``AWS_ENDPOINT_URL`` included).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional, TextIO

from ..aws import ClientFactory
from .output import to_json

__all__ = ["Context", "SessionFactory", "boto3_session", "cli_region", "REGION_ENV"]

#: The region variable of the AWS CLI and most SDKs (boto3 reads only AWS_DEFAULT_REGION).
REGION_ENV = "AWS_REGION"

#: Makes the boto3 session from ``--profile`` and ``--region`` (either may be None).
SessionFactory = Callable[[Optional[str], Optional[str]], Any]


def boto3_session(profile: Optional[str], region: Optional[str]) -> Any:
    """A plain boto3 session; boto3 resolves what is not given, as it always does."""
    import boto3.session

    return boto3.session.Session(profile_name=profile, region_name=region)


def cli_region(option: Optional[str], environ: Mapping[str, str]) -> Optional[str]:
    """The run's region: ``--region``, else ``AWS_REGION``; None leaves it to boto3
    (``AWS_DEFAULT_REGION``, then the profile's ``region`` in the shared config file)."""
    return option or environ.get(REGION_ENV, "").strip() or None


@dataclass
class Context:
    """The streams, the output format and the (lazy) AWS clients of one CLI run."""

    stdout: TextIO
    stderr: TextIO
    json: bool = False
    region: Optional[str] = None
    endpoint_url: Optional[str] = None
    profile: Optional[str] = None
    session_factory: SessionFactory = boto3_session
    _clients: Optional[ClientFactory] = field(default=None, repr=False)
    _other_clients: dict[tuple[Optional[str], Optional[str]], ClientFactory] = field(
        default_factory=dict, repr=False)

    @property
    def clients(self) -> ClientFactory:
        """The one client factory of this run, made on first use."""
        if self._clients is None:
            session = self.session_factory(self.profile, self.region)
            self._clients = ClientFactory(session=session, endpoint_url=self.endpoint_url)
        return self._clients

    def clients_for(self, profile: Optional[str], region: Optional[str]) -> ClientFactory:
        """Clients for a function's own ``boto_profile``/``region`` (None: the run's own)."""
        profile = profile or self.profile
        region = region or self.region
        if (profile, region) == (self.profile, self.region):
            return self.clients
        key = (profile, region)
        if key not in self._other_clients:
            session = self.session_factory(profile, region)
            self._other_clients[key] = ClientFactory(session=session,
                                                     endpoint_url=self.endpoint_url)
        return self._other_clients[key]

    @property
    def interactive(self) -> bool:
        """Whether progress bars may be drawn: a terminal on stderr and no ``--json``."""
        isatty = getattr(self.stderr, "isatty", None)
        return not self.json and callable(isatty) and bool(isatty())

    def emit(self, data: Any, text: Callable[[], str]) -> None:
        """Print the result: ``data`` as JSON with ``--json``, else ``text()``."""
        rendered = to_json(data) if self.json else text()
        if rendered:
            self.stdout.write(rendered if rendered.endswith("\n") else rendered + "\n")
            self.stdout.flush()

    def note(self, line: str) -> None:
        """A progress or information line on stderr (never part of the result)."""
        self.stderr.write(line + "\n")
        self.stderr.flush()
