"""Build the optional Cython accelerators; fall back to pure Python when they cannot build.

Every accelerated module has a pure-Python twin, so a machine without a C
compiler (or with ``OMEGA_PURE_PYTHON=1`` set at build time) still gets a
working install. The build says which path it took. Release builds (wheels,
CI) set ``OMEGA_REQUIRE_ACCELERATED=1``, which turns a failed compilation
into a failed build instead of a silently pure wheel.

The C files Cython generates are not shipped in the sdist: the sdist holds
the ``.pyx`` sources, and ``Cython`` is a build requirement
(pyproject.toml), so every build regenerates C that matches the Python it
compiles for (docs/performance.md, "Building").
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ACCELERATED_SOURCES = {
    "omega.protocol._framing_c": "src/omega/protocol/_framing_c.pyx",
    "omega.protocol._codec_c": "src/omega/protocol/_codec_c.pyx",
    "omega.crypto._ratchet_c": "src/omega/crypto/_ratchet_c.pyx",
}


def _required() -> bool:
    return os.environ.get("OMEGA_REQUIRE_ACCELERATED", "") in {"1", "true", "yes"}


def _wanted() -> bool:
    return os.environ.get("OMEGA_PURE_PYTHON", "") not in {"1", "true", "yes"}


def _extensions() -> list[Extension]:
    if not _wanted():
        print("omega: OMEGA_PURE_PYTHON is set; installing the pure-Python path", file=sys.stderr)
        return []
    try:
        from Cython.Build import cythonize
    except ImportError:
        if _required():
            raise
        print("omega: Cython is unavailable; installing the pure-Python path", file=sys.stderr)
        return []
    extensions = [Extension(name, [source]) for name, source in ACCELERATED_SOURCES.items()]
    return list(
        cythonize(
            extensions,
            compiler_directives={"language_level": "3", "boundscheck": False, "wraparound": False},
            quiet=True,
        )
    )


class OptionalBuildExt(build_ext):
    """A build_ext that installs the pure-Python path when compilation fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # any compiler failure means "go pure"
            self._warn(exc)

    def build_extension(self, ext: Extension) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # likewise, per extension
            self._warn(exc)

    @staticmethod
    def _warn(exc: BaseException) -> None:
        if _required():
            raise exc
        print(
            f"omega: could not compile the Cython accelerators ({exc}); "
            "installing the pure-Python path",
            file=sys.stderr,
        )


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
