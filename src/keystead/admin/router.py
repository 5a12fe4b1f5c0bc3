"""Assembles the admin API under /api/admin/v1."""

from __future__ import annotations

from fastapi import APIRouter

from keystead.admin import (
    routes_account,
    routes_audit,
    routes_catalog,
    routes_directory,
    routes_idp,
    routes_keys,
    routes_provisioning,
    routes_usage,
)

PREFIX = "/api/admin/v1"


def build_router() -> APIRouter:
    router = APIRouter(prefix=PREFIX)
    for module in (
        routes_account,
        routes_catalog,
        routes_directory,
        routes_keys,
        routes_provisioning,
        routes_idp,
        routes_audit,
        routes_usage,
    ):
        router.include_router(module.router)
    return router
