"""API errors: one shape for every failure, ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from aiohttp import web


class ApiError(Exception):
    """Raised by handlers; the error middleware turns it into the JSON error response."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} does not exist")
