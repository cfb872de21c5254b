"""The exact commands a run used, kept for the results so anyone can repeat a measurement.

Every subprocess the harness starts goes through :class:`CommandLog`, which records it once
(with the environment variables the harness set) before running it. Secrets, tokens, scratch
folders and ephemeral ports are written as ``$NAMES``, so the record is safe to commit and the
same command run twice is recorded once, with a count.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

#: Variables a caller's shell might carry that would silently change what is measured.
FOREIGN_PREFIXES = ("ALIGNWORK_", "GUNICORN_", "FLASK_")
FOREIGN_NAMES = ("DATABASE_URL", "PROMETHEUS_MULTIPROC_DIR")


def clean_environment() -> dict[str, str]:
    """This process's environment without the app's and gunicorn's own settings."""
    return {
        name: value for name, value in os.environ.items()
        if not name.startswith(FOREIGN_PREFIXES) and name not in FOREIGN_NAMES
    }


class CommandLog:
    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._names: dict[str, str] = {}
        self._common: dict[str, str] = {}

    def common(self, env: Mapping[str, str]) -> None:
        """Variables every command shares: shown once as ``export`` lines, not on each command."""
        self._common = dict(env)

    def hide(self, value: str, name: str) -> None:
        """Write ``value`` as ``name`` wherever it appears in a recorded command."""
        if value:
            self._names[value] = name

    def render(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> str:
        own = {k: v for k, v in (env or {}).items() if self._common.get(k) != v}
        shown = [f"{k}={shlex.quote(v)}" for k, v in sorted(own.items())]
        return self._hide(" ".join(shown + [shlex.quote(str(a)) for a in args]))

    def _hide(self, text: str) -> str:
        for value in sorted(self._names, key=len, reverse=True):
            text = text.replace(value, self._names[value])
        return text

    def record(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        line = self.render(args, env)
        self._counts[line] = self._counts.get(line, 0) + 1

    def comment(self, text: str) -> None:
        """A step done inside the harness process rather than by a command, said in words."""
        self._counts.setdefault(f"# {self._hide(text)}", 1)

    def run(
        self, args: Sequence[str], env: Mapping[str, str], cwd: Path, timeout: float
    ) -> subprocess.CompletedProcess:
        """Record and run a command to completion; raise with its stderr if it fails."""
        self.record(args, env)
        out = subprocess.run(
            [str(a) for a in args], env={**clean_environment(), **env}, cwd=cwd,
            capture_output=True, text=True, timeout=timeout,
        )
        if out.returncode != 0:
            raise RuntimeError(
                f"{self.render(args)} exited {out.returncode}: {(out.stderr or out.stdout).strip()[-2000:]}"
            )
        return out

    def lines(self) -> list[str]:
        exports = [self._hide(f"export {k}={shlex.quote(v)}") for k, v in sorted(self._common.items())]
        return exports + [line if n == 1 else f"{line}    # ×{n}" for line, n in self._counts.items()]
