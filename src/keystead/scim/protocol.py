"""SCIM's wire format, in one place: the resource models, the tolerant parsing policy
Entra needs, SCIM errors and the media type. Built on scim2-models.

Where Entra bends the RFC (capitalised ``op``, ``"True"``/``"False"`` strings, dotted and
URN keys in path-less operations, member removal by value array, a Microsoft schema URN
on group creation, the manager as a bare id) the tolerant policy below, plus
:func:`entra_patch_body`, accepts it.
"""

from __future__ import annotations

from typing import Any, ClassVar

from scim2_models import (
    ComplexAttribute,
    Context,
    Email,
    EnterpriseUser,
    Error,
    Group,
    PatchOp,
    SCIMException,
    ScimPolicy,
    User,
)

from keystead.errors import BadRequest, KeysteadError
from keystead.web import jsonbody

MEDIA_TYPE = "application/scim+json"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
LIST_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
ERROR_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:Error"
MAX_COUNT = 1000


class AnyEmail(Email):
    """An ``emails`` entry whose value may be any string: Entra's default mapping sends
    proxyAddresses as emails of type "other" ("SMTP:…", "X500:…"), which are not e-mail
    addresses, and refusing them would fail the user's provisioning."""

    value: str | None = None


class KeysteadUser(User[EnterpriseUser]):
    """The core User with the enterprise extension, and tolerant ``emails``."""

    # A pydantic field redefinition: list is invariant, so mypy sees a narrower override.
    emails: list[AnyEmail] | None = None  # type: ignore[assignment]

    Emails: ClassVar[type[ComplexAttribute]] = AnyEmail


UserResource = KeysteadUser
GroupResource = Group

POLICY = ScimPolicy(
    unknown=ScimPolicy.Unknown.keep,
    remove_value_as_filter=ScimPolicy.RemoveValue.apply,
    unmatched_path_filter=ScimPolicy.UnmatchedPathFilter.create,
)


class ScimError(KeysteadError):
    """An error answered in SCIM's Error schema (RFC 7644 §3.12)."""

    def __init__(self, status: int, detail: str, scim_type: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.scim_type = scim_type

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"schemas": [ERROR_SCHEMA], "status": str(self.status)}
        if self.scim_type:
            body["scimType"] = self.scim_type
        body["detail"] = self.message
        return body


def from_scim_exception(exc: SCIMException) -> ScimError:
    error: Error = exc.to_error()
    return ScimError(int(error.status or 400), error.detail or str(exc), error.scim_type)


def from_domain(exc: KeysteadError) -> ScimError:
    """A domain error in SCIM's terms (uniqueness for 409, invalidValue for 4xx input)."""
    if isinstance(exc, ScimError):
        return exc
    scim_type = {409: "uniqueness", 400: "invalidValue", 422: "invalidValue"}.get(exc.status)
    status = 400 if exc.status == 422 else exc.status
    return ScimError(status, exc.message, scim_type)


def parse_json(body: bytes) -> dict[str, Any]:
    try:
        value = jsonbody.loads(body)
    except BadRequest as exc:  # not UTF-8 JSON text, or nested too deeply to parse
        raise ScimError(400, exc.message, "invalidSyntax") from exc
    if not isinstance(value, dict):
        raise ScimError(400, "the request body must be a JSON object", "invalidSyntax")
    return value


def _manager_fix(op: dict[str, Any]) -> dict[str, Any]:
    """Entra sends the manager as a bare id and clears it with ""/null: RFC form it."""
    path = str(op.get("path") or "")
    if not path.lower().endswith(":manager") and path.lower() != "manager":
        return op
    value = op.get("value")
    if value in ("", None) or value == {"value": ""}:
        return {"op": "remove", "path": path}
    if isinstance(value, str):
        return {**op, "value": {"value": value}}
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return {**op, "value": {"value": value[0].get("value")}}
    return op


def entra_patch_body(body: dict[str, Any]) -> dict[str, Any]:
    operations = body.get("Operations")
    if not isinstance(operations, list):
        raise ScimError(400, "a PatchOp needs an 'Operations' list", "invalidSyntax")
    fixed = [_manager_fix(op) if isinstance(op, dict) else op for op in operations]
    return {**body, "Operations": fixed}


# pydantic keeps parametrised generics only weakly: without a reference of our own the
# class is collected and built again (milliseconds of schema work) now and then.
_PATCH_MODELS: dict[type[Any], Any] = {}


def _patch_model(model: type[Any]) -> Any:
    found = _PATCH_MODELS.get(model)
    if found is None:
        found = _PATCH_MODELS[model] = PatchOp[model]  # type: ignore[valid-type]
    return found


def parse_patch(model: type[Any], body: dict[str, Any]) -> PatchOp[Any]:
    try:
        patch_model = _patch_model(model)
        return patch_model.model_validate(  # type: ignore[no-any-return]
            entra_patch_body(body), scim_ctx=Context.RESOURCE_PATCH_REQUEST, scim_policy=POLICY
        )
    except SCIMException as exc:
        raise from_scim_exception(exc) from exc
    except ValueError as exc:
        raise ScimError(400, first_problem(exc), "invalidValue") from exc


def first_problem(exc: ValueError) -> str:
    """The first thing pydantic found wrong, as one line a client can act on."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        problems = errors()
        if problems:
            first = problems[0]
            where = ".".join(str(p) for p in first.get("loc", ()))
            return f"{where}: {first.get('msg')}" if where else str(first.get("msg"))
    return str(exc).splitlines()[0]


def validate(model: type[Any], data: dict[str, Any], context: Context) -> Any:
    try:
        return model.model_validate(data, scim_ctx=context, scim_policy=POLICY)
    except SCIMException as exc:
        raise from_scim_exception(exc) from exc
    except ValueError as exc:
        raise ScimError(400, first_problem(exc), "invalidValue") from exc
