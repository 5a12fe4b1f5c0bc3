"""`keystead idp …`"""

from __future__ import annotations

from typing import Annotated

import typer

from keystead.accounts import service as accounts
from keystead.admin.routes_idp import scim_url
from keystead.admin.schemas import IdpOut, ScimTokenOut
from keystead.cli.context import JsonFlag, ctx_of, emit, out, pairs
from keystead.errors import InvalidInput
from keystead.idp import service as idp

app = typer.Typer(help="IDP integration: directory sync (SCIM) and sign-in.", no_args_is_help=True)


def _show(view: IdpOut) -> None:
    pairs(
        [
            ("enabled", "yes" if view.enabled else "no"),
            ("provider", view.provider),
            ("SCIM URL", view.scim_url),
            ("SCIM token", view.scim_token_hint or "not set (keystead idp scim-token)"),
        ]
    )


def _set_enabled(ctx: typer.Context, enabled: bool, as_json: bool) -> None:
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        account = accounts.get_account(session, account_id)
        settings = idp.set_enabled(session, account, enabled, actor=cli.actor)
        view = IdpOut.of(settings, scim_url(cli.settings.effective_public_url, str(account_id)))
    emit(view, as_json, lambda: _show(view))


@app.command("enable")
def enable(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Turn the IDP integration on (enterprise plan)."""
    _set_enabled(ctx, True, as_json)


@app.command("disable")
def disable(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Turn the IDP integration off: the SCIM endpoint answers 403."""
    _set_enabled(ctx, False, as_json)


@app.command("show")
def show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the integration settings (never the token itself)."""
    cli = ctx_of(ctx)
    with cli.read() as (session, account_id):
        view = IdpOut.of(
            idp.settings_of(session, account_id),
            scim_url(cli.settings.effective_public_url, str(account_id)),
        )
    emit(view, as_json, lambda: _show(view))


@app.command("scim-token")
def scim_token(
    ctx: typer.Context,
    rotate: Annotated[bool, typer.Option("--rotate", help="Replace the current token")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Create the SCIM secret token (printed once) with the SCIM URL to paste into Entra."""
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        account = accounts.get_account(session, account_id)
        current = idp.settings_of(session, account_id)
        if current.scim_token_hash is not None and not rotate:
            raise InvalidInput(
                "a SCIM token exists already and is never shown again; pass --rotate to "
                "replace it (the old one stops working at once)"
            )
        new = idp.rotate_scim_token(session, account, actor=cli.actor)
    view = ScimTokenOut(
        scim_url=scim_url(cli.settings.effective_public_url, str(account_id)), token=new.token
    )
    emit(view, as_json, lambda: pairs([("SCIM URL", view.scim_url), ("SCIM token", view.token)]))
    if not as_json:
        out.print("Paste both into the Provisioning page of the Entra enterprise application.")
