"""WebSocket close codes, declared once for the server, the Python client and the dashboard
(which imports them from ``/closecodes.js``, generated from this enum).

The 44xx codes mirror the HTTP status a plain request would get, so a client reads them the same
way: 4401 = fix the token, 4403 = not allowed, 4400 = fix the parameters, 4429 = too many.
"""

from __future__ import annotations

from enum import IntEnum


class CloseCode(IntEnum):
    GOING_AWAY = 1001  # the server stops or the client was too slow: reconnect and resume with after=
    POLICY = 1008  # a foreign Origin or Host
    INTERNAL = 1011
    BAD_REQUEST = 4400
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    NOT_FOUND = 4404
    TOO_MANY = 4429

    @classmethod
    def for_status(cls, status: int) -> CloseCode:
        """The close code for the HTTP status a plain request would have got."""
        return {
            400: cls.BAD_REQUEST,
            401: cls.UNAUTHORIZED,
            403: cls.FORBIDDEN,
            404: cls.NOT_FOUND,
            429: cls.TOO_MANY,
        }.get(status, cls.BAD_REQUEST if status < 500 else cls.INTERNAL)


def javascript_module() -> str:
    """``export const CloseCode = {...}`` for the dashboard."""
    body = ",\n".join(f"  {code.name}: {code.value}" for code in CloseCode)
    return (
        f"// generated from orchlog.closecodes: do not edit\nexport const CloseCode = Object.freeze({{\n{body},\n}});\n"
    )
