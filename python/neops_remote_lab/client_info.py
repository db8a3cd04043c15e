"""Who is asking: the `client` object `RemoteLabClient` sends with `POST /session`.

The server shows it in `GET /sessions`, its events and its dashboard, so people sharing a lab
host see whose run holds it. Servers that do not know it (the original 1.4.0) ignore the body.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping

from ._text import printable, shortened

__all__ = ["CLIENT_INFO_LIMITS", "ci_job_url", "client_info_from_environment", "fit_client_info"]

# The server's limits, in characters (it answers 422 beyond them).
CLIENT_INFO_LIMITS = {"user": 64, "host": 255, "ci_job_url": 2048, "label": 512}


def client_info_from_environment(label: str | None = None) -> dict[str, str]:
    """This process's client info, fitted to the server's limits (see `fit_client_info`).

    Keys, each left out when unknown: `user` (the login name, as `getpass.getuser()` finds it:
    `LOGNAME`, `USER`, … or the password database), `host` (`socket.gethostname()`),
    `ci_job_url` (see `ci_job_url`) and `label` (as given; the pytest plugin passes its
    invocation, e.g. `pytest -m lab`).
    """
    try:
        user: str | None = getpass.getuser()
    except (OSError, KeyError):  # no login name anywhere (a container without a passwd entry)
        user = None
    return fit_client_info({"user": user, "host": socket.gethostname(), "ci_job_url": ci_job_url(), "label": label})


def ci_job_url(environ: Mapping[str, str] | None = None) -> str | None:
    """The CI job's web page from `environ` (default `os.environ`), or None outside CI.

    `CI_JOB_URL` (GitLab), else `$GITHUB_SERVER_URL/$GITHUB_REPOSITORY/actions/runs/$GITHUB_RUN_ID`
    (GitHub Actions, all three set), else `BUILD_URL` (Jenkins).
    """
    env = os.environ if environ is None else environ
    github = [env.get(name) for name in ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_RUN_ID")]
    if env.get("CI_JOB_URL"):
        return env["CI_JOB_URL"]
    if all(github):
        server, repository, run = github
        return f"{server}/{repository}/actions/runs/{run}"
    return env.get("BUILD_URL") or None


def fit_client_info(info: Mapping[str, object]) -> dict[str, str]:
    """`info`'s fields as the server accepts them; `{}` when none is left.

    Only `user`, `host`, `ci_job_url` and `label` with text values are kept. Control characters
    become spaces and the text is trimmed; empty text is left out. `user`, `host` and `label`
    longer than `CLIENT_INFO_LIMITS` are cut (ending in "…"). A `ci_job_url` that is not an
    `http://` or `https://` link of ASCII characters without spaces, or is too long, is left out
    (a cut link would lead nowhere).
    """
    fitted: dict[str, str] = {}
    for key, limit in CLIENT_INFO_LIMITS.items():
        value = info.get(key)
        text = printable(value) if isinstance(value, str) else ""
        if key == "ci_job_url" and not _is_link(text, limit):
            continue
        if text:
            fitted[key] = shortened(text, limit)
    return fitted


def _is_link(text: str, limit: int) -> bool:
    return (
        text.startswith(("http://", "https://"))
        and len(text) <= limit
        and text.isascii()
        and not any(char.isspace() for char in text)
    )
