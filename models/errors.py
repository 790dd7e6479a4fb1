"""Error types shared by the library and the pipeline.

Every error carries the process exit code of DESIGN.md §3.5 so the CLI can map any
failure to its code without guessing:

====  =========================================================
code  meaning
====  =========================================================
0     ok
2     bad input data (:class:`BadInputError`)
3     disclosure check blocked a release (:class:`DisclosureBlockedError`)
4     design cannot be estimated (:class:`DesignError`)
5     bad or unsafe configuration (:class:`ConfigError`)
6     the environment prevents the run: an output location is blocked or not
      writable, the disk is full, or another run holds the project lock
      (:class:`RunEnvironmentError`)
====  =========================================================
"""

from __future__ import annotations


class ClusterImpactError(Exception):
    """Base class; ``exit_code`` is the CLI exit code."""

    exit_code = 1

    def __init__(self, message: str, *, problems: list[str] | None = None):
        self.problems = list(problems or [])
        if self.problems:
            message = message.rstrip() + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(message)


class BadInputError(ClusterImpactError):
    """Input data violate the contract (exit 2). Message names file, column, count,
    first offending keys and the fix."""

    exit_code = 2


class DisclosureBlockedError(ClusterImpactError):
    """The disclosure-control profile blocks the release (exit 3)."""

    exit_code = 3


class DesignError(ClusterImpactError):
    """The design cannot be estimated: no controls, separation, no common support,
    treatment collinear with the fixed effects ... (exit 4)."""

    exit_code = 4


class ConfigError(ClusterImpactError):
    """Bad or unsafe configuration: unknown key, bad value, unsafe column name or path,
    an estimator/vcov combination that is not supported (exit 5)."""

    exit_code = 5


class RunEnvironmentError(ClusterImpactError):
    """The machine or the project folder prevents the run, not the data or params.yaml:
    a file where an output folder should be, an output location that is read-only, a full
    disk (ENOSPC) or quota, or another ``cluster-impact`` run holding the project lock
    (exit 6). Nothing was written; fix the environment and run again (a retry can succeed
    without any change to data or params, which is why this is not exit 5)."""

    exit_code = 6


class UnsupportedVcovError(ConfigError):
    """An estimator was asked for a variance estimator it does not implement."""

    def __init__(self, estimator: str, vcov: str, supported: list[str]):
        super().__init__(
            f"estimator '{estimator}' does not support vcov '{vcov}'. "
            f"Supported for '{estimator}': {', '.join(supported)}. "
            "Change estimate.vcov in params.yaml (or the estimator's own vcov option)."
        )


def first_keys(keys, n: int = 5) -> str:
    """Format the first ``n`` offending keys for an error message."""
    keys = list(keys)
    shown = ", ".join(str(k) for k in keys[:n])
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return shown + more
