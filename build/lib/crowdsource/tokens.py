"""Keyed hashes: the only form in which a contributor token or a client address is kept.

The raw token never reaches the store, a log line or an event; only
``HMAC-SHA256(secret, token)`` does. Without the server secret the hash cannot be linked back
to a token (nor brute-forced: tokens carry at least 96 bits).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re

from crowdsource.errors import ReportRejectedError

TOKEN_HEADER = "X-Contributor-Token"
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
MIN_SECRET_BYTES = 16
# Domain separation: the same secret never yields the same hash for a token and an address.
_TOKEN_DOMAIN = b"correspondance/contributor/v1\x00"
_ADDRESS_DOMAIN = b"correspondance/address/v1\x00"


def _check_secret(secret: bytes) -> None:
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"the hashing secret must have at least {MIN_SECRET_BYTES} bytes")


def contributor_key(token: str, secret: bytes) -> str:
    """Keyed hash of a contributor token: the contributor's only identity at rest.

    Parameters
    ----------
    token : str
        The anonymous token the device generated (``X-Contributor-Token``): 16 to 128
        URL-safe characters (``A-Z a-z 0-9 - _``).
    secret : bytes
        Server secret (at least 16 bytes), from settings.

    Returns
    -------
    str
        64 lowercase hex digits.

    Raises
    ------
    ReportRejectedError
        ``invalid_report`` naming ``X-Contributor-Token`` if the token is missing or
        malformed (the message never repeats the token).
    ValueError
        If the secret is too short (a configuration error).
    """
    _check_secret(secret)
    if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
        raise ReportRejectedError(
            f"{TOKEN_HEADER}: must be 16 to 128 URL-safe characters (A-Z a-z 0-9 - _)",
            fields=(TOKEN_HEADER,),
        )
    return hmac.new(secret, _TOKEN_DOMAIN + token.encode("ascii"), hashlib.sha256).hexdigest()


def network_of(client_address: str) -> str:
    """The network a client address stands for: the IPv4 address, or the IPv6 /64.

    One IPv6 subscriber holds a whole /64 (2^64 addresses), so counting IPv6 addresses one by
    one would let a single device pose as millions of clients.

    Parameters
    ----------
    client_address : str
        IPv4 or IPv6 address as text (an IPv4-mapped IPv6 address counts as IPv4).

    Returns
    -------
    str
        Canonical text of the address (IPv4) or of its /64 network (IPv6).

    Raises
    ------
    ValueError
        If it is not an IP address.
    """
    address = ipaddress.ip_address(client_address.strip())
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return str(address)


def address_key(client_address: str, secret: bytes) -> str:
    """Keyed hash of a client's network (see :func:`network_of`), for limits and corroboration.

    Parameters
    ----------
    client_address : str
        The client's IP address as the API sees it.
    secret : bytes
        Server secret (at least 16 bytes).

    Returns
    -------
    str
        32 lowercase hex digits (128 bits: plenty to tell networks apart, and shorter keys).

    Raises
    ------
    ValueError
        If the address is not an IP address or the secret is too short.
    """
    _check_secret(secret)
    network = network_of(client_address).encode("ascii")
    return hmac.new(secret, _ADDRESS_DOMAIN + network, hashlib.sha256).hexdigest()[:32]
