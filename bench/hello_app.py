"""The ceiling: a bare Starlette app answering a small JSON body, served exactly like
Keystead (uvicorn, httptools + uvloop, one worker)."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world"})


app = Starlette(routes=[Route("/hello", hello)])
