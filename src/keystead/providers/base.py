"""The interface a provider module fills in (see the package's docstring)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scim2_models import ScimPolicy


@dataclass(frozen=True)
class ScimShapes:
    """How the provider's provisioning service writes SCIM requests."""

    user_model: Any  # the User resource model, with whatever it sends tolerated
    policy: ScimPolicy  # scim2-models' tolerances for its PATCH and value forms
    patch_body: Callable[[dict[str, Any]], dict[str, Any]]  # its PATCH rewritten to RFC form


@dataclass(frozen=True)
class Provider:
    name: str
    scim: ScimShapes
