"""URLs as they may be shown where others read them (logs, messages, outputs' metadata, reports): the values of
secret-looking query parameters (an API key, a token, a signed URL's signature) and a password before the host
masked as ``***``. The engine reads with the real URL; only what is shown is masked."""

import re
from urllib.parse import unquote

# Query parameters whose value is a secret, by name.
_SECRET_PARAMETER = re.compile(r"key|token|secret|sig|password|passwd|pwd|auth|credential|x-amz-", re.IGNORECASE)
_URL = re.compile(r"[a-z][\w+.-]*://[^\s()<>\"']+", re.IGNORECASE)


def public_url(url: str) -> str:
    """``url`` with secrets masked."""
    if not url:
        return url
    base, question, query = url.partition("?")
    base = re.sub(r"^([a-z][\w+.-]*://[^/@:]+):[^/@]*@", r"\1:***@", base, flags=re.IGNORECASE)
    if not question:
        return base
    parts = []
    for part in query.split("&"):
        name, equals, _ = part.partition("=")
        parts.append(f"{name}=***" if equals and _SECRET_PARAMETER.search(unquote(name)) else part)
    return f"{base}?{'&'.join(parts)}"


def public_text(text: str) -> str:
    """``text`` (GDAL's message, say) with every URL in it masked as :func:`public_url` masks one."""
    return _URL.sub(lambda found: public_url(found.group(0)), text)
