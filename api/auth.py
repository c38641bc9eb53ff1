"""Operator authentication: ``Authorization: Bearer <token>`` → the operator's username.

Routes that need an operator take ``operator: OperatorDep``; a call without a valid,
unexpired token never reaches them (401 ``unauthorized`` with ``WWW-Authenticate: Bearer``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.deps import State
from crowdsource.account_tables import open_operator_accounts
from crowdsource.accounts import NotAuthenticatedError, OperatorAccounts


def get_operator_accounts(state: State) -> OperatorAccounts:
    """The operator accounts of this deployment (Redis, or the embedded accounts file)."""
    return open_operator_accounts(state.store, state.settings.operators_file)


OperatorAccountsDep = Annotated[OperatorAccounts, Depends(get_operator_accounts)]


def bearer_token(request: Request) -> str:
    """The bearer token of a request.

    Raises
    ------
    NotAuthenticatedError
        If there is no ``Authorization: Bearer <token>`` header.
    """
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticatedError(
            "this endpoint needs an operator: send 'Authorization: Bearer <token>' "
            "(POST /api/v1/operators/token)"
        )
    return token.strip()


async def require_operator(request: Request, accounts: OperatorAccountsDep) -> str:
    """The username of the operator whose token the request carries.

    Raises
    ------
    NotAuthenticatedError
        If the token is missing, unknown, revoked or expired.
    """
    username = await accounts.resolve(bearer_token(request))
    if username is None:
        raise NotAuthenticatedError("the bearer token is invalid or has expired; log in again")
    return username


OperatorDep = Annotated[str, Depends(require_operator)]
