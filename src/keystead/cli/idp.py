"""`keystead idp …`"""

from __future__ import annotations

from typing import Annotated

import typer

from keystead.accounts import service as accounts
from keystead.admin.schemas import IdpOut, IdpStatusOut, IdpTestOut, ScimTokenOut
from keystead.admin.views import idp_view, scim_url
from keystead.cli.context import JsonFlag, ctx_of, emit, out, pairs
from keystead.errors import InvalidInput
from keystead.idp import service as idp
from keystead.idp import status as idp_status
from keystead.idp.config import SignInChanges

app = typer.Typer(help="IDP integration: directory sync (SCIM) and sign-in.", no_args_is_help=True)


def _show(view: IdpOut) -> None:
    unset = "not set (keystead idp configure)"
    pairs(
        ("enabled", "yes" if view.enabled else "no"),
        ("provider", view.provider),
        ("SCIM URL", view.scim_url),
        ("SCIM token", view.scim_token_hint or "not set (keystead idp scim-token)"),
        ("SSO URL", view.sso_url),
        ("discovery URL", view.discovery_url or unset),
        ("token issuer", view.issuer or unset),
        ("token audience", view.audience or unset),
        ("username claim", view.username_claim),
        ("clock leeway", f"{view.leeway_seconds} s"),
        ("certificate lifetime", f"{view.cert_ttl_seconds} s"),
        ("group policy", view.group_policy),
    )


def _set_enabled(ctx: typer.Context, enabled: bool, as_json: bool) -> None:
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        account = accounts.get_account(session, account_id)
        settings = idp.set_enabled(
            session, account, enabled, actor=cli.actor, master=cli.runtime.master
        )
        view = idp_view(cli.settings, settings)
    emit(view, as_json, lambda: _show(view))


@app.command("enable")
def enable(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Turn the IDP integration on (enterprise plan)."""
    _set_enabled(ctx, True, as_json)


@app.command("disable")
def disable(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Turn the IDP integration off: the SCIM endpoint answers 403."""
    _set_enabled(ctx, False, as_json)


@app.command("configure")
def configure(
    ctx: typer.Context,
    discovery_url: Annotated[
        str | None,
        typer.Option(
            help="https://login.microsoftonline.com/TENANT_ID/.well-known/openid-configuration"
        ),
    ] = None,
    issuer: Annotated[str | None, typer.Option(help="https://sts.windows.net/TENANT_ID/")] = None,
    audience: Annotated[
        str | None, typer.Option(help="The API's Application ID URI (api://…)")
    ] = None,
    username_claim: Annotated[
        str | None, typer.Option(help="unique_name (default), upn, preferred_username")
    ] = None,
    leeway: Annotated[int | None, typer.Option(help="Clock leeway in seconds (default 60)")] = None,
    cert_ttl: Annotated[
        int | None, typer.Option(help="SSO certificate lifetime in seconds (default 3600)")
    ] = None,
    group_policy: Annotated[
        str | None, typer.Option(help="directory (default) or directory_and_token (stricter)")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Set how sign-in tokens are verified; then check it with `keystead idp test`."""
    changes = SignInChanges(
        discovery_url=discovery_url,
        issuer=issuer,
        audience=audience,
        username_claim=username_claim,
        leeway_seconds=leeway,
        cert_ttl_seconds=cert_ttl,
        group_policy=group_policy,
    )
    if changes == SignInChanges():
        raise InvalidInput("nothing to change: pass at least one option (see --help)")
    cli = ctx_of(ctx)
    with cli.write() as (session, account_id):
        account = accounts.get_account(session, account_id)
        settings = idp.configure(
            session,
            account,
            changes,
            actor=cli.actor,
            allow_private=cli.settings.idp_allow_private_addresses,
        )
        view = idp_view(cli.settings, settings)
    emit(view, as_json, lambda: _show(view))


@app.command("show")
def show(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Show the integration settings (never the token itself)."""
    cli = ctx_of(ctx)
    with cli.read() as (session, account_id):
        view = idp_view(cli.settings, idp.settings_of(session, account_id))
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
    emit(view, as_json, lambda: pairs(("SCIM URL", view.scim_url), ("SCIM token", view.token)))
    if not as_json:
        out.print("Paste both into the Provisioning page of the Entra enterprise application.")


@app.command("test")
def check(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """Fetch the discovery document and signing keys and report every problem found
    (exit status 1 if any is an error)."""
    cli = ctx_of(ctx)
    with cli.read() as (session, account_id):
        settings = idp.settings_of(session, account_id)
    view = IdpTestOut.of(idp.check_configuration(settings, fetch=cli.runtime.outbound))

    def human() -> None:
        pairs(
            ("discovery URL", view.discovery_url),
            ("issuer in document", view.document_issuer or "-"),
            ("keys URL", view.jwks_uri or "-"),
            ("RS256 signing keys", f"{view.rs256_key_count} ({', '.join(view.key_ids)})"),
        )
        for problem in view.problems:
            colour = "red" if problem.severity == "error" else "yellow"
            out.print(f"[{colour}]{problem.severity}[/{colour}] {problem.code}: {problem.message}")
        out.print("[green]configuration OK[/green]" if view.ok else "[red]not usable yet[/red]")

    emit(view, as_json, human)
    if not view.ok:
        raise typer.Exit(1)


@app.command("status")
def status(ctx: typer.Context, as_json: JsonFlag = False) -> None:
    """What Keystead has seen of the identity provider: last SCIM request, users and groups
    synced, failures and refused sign-ins in the last 24 h, Entra's last contact."""
    with ctx_of(ctx).read() as (session, account_id):
        view = IdpStatusOut.of(idp_status.of(session, account_id))
    last, request = view.last_scim_request, "none"
    if last:
        request = f"{last.operation} {last.outcome} ({last.status}) at {last.at:%Y-%m-%d %H:%M}"
    unverified = f"{view.unverified_refusals} in all"
    if view.unverified_refusal_at:
        unverified += f", last {view.unverified_refusal_at:%Y-%m-%d %H:%M}"
    shown = [
        ("last SCIM request", request),
        ("Entra last reached Keystead", view.connected_at or "never (current token)"),
        ("users synced", view.users),
        ("groups synced", view.groups),
        ("failed SCIM requests, 24 h", view.failed_scim_requests),
        ("refused sign-ins, 24 h", view.refused_sign_ins),
        ("unverifiable sign-in tokens", unverified),
        ("last configuration test", _test_outcome(view)),
        ("last sign-in", view.last_sign_in_at or "never"),
    ]
    emit(view, as_json, lambda: pairs(*shown))


def _test_outcome(view: IdpStatusOut) -> str:
    if view.last_test_at is None:
        return "not run since the sign-in settings changed"
    outcome = "passed" if view.last_test_ok else "found problems"
    return f"{outcome} at {view.last_test_at:%Y-%m-%d %H:%M}"
