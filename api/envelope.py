"""The response shapes of SPEC section 7: `{"success": true, "data": ...}` with `page`, `limit`,
`total`, `totalPages` on lists; `{"success": false, "error": {"code", "message", "details"?}}`."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


def ok(data: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"success": True, "data": data}, status_code=status_code, headers=headers)


def page_of(items: list[Any], *, page: int, limit: int, total: int) -> dict[str, Any]:
    return {
        "page": page,
        "limit": limit,
        "total": total,
        "totalPages": (total + limit - 1) // limit if total else 0,
        "items": items,
    }


def listed(items: list[Any], *, page: int, limit: int, total: int) -> JSONResponse:
    body = {
        "success": True,
        "data": items,
        **{
            k: v
            for k, v in page_of(items, page=page, limit=limit, total=total).items()
            if k != "items"
        },
    }
    return JSONResponse(body)


def error(
    status_code: int,
    code: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    payload: dict[str, Any] = {"code": code, "message": message}
    if details:
        payload["details"] = details
    return JSONResponse(
        {"success": False, "error": payload}, status_code=status_code, headers=headers
    )
