"""Build the optional C fast path of the OTLP decoder (src/tracehive/ingest/_otlp_fast.c).

The pure-Python decoder is the reference; the extension is an accelerator with identical output
(differentially tested). If no compiler is available the build is skipped and Python is used.
"""

import os

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

SRC = "src/tracehive/ingest/_otlp_fast.c"


class OptionalBuildExt(build_ext):
    def run(self):
        try:
            super().run()
        except Exception as exc:  # pragma: no cover - depends on the machine
            print(f"warning: C decoder not built ({exc}); the pure-Python decoder will be used")

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # pragma: no cover
            print(f"warning: C decoder not built ({exc}); the pure-Python decoder will be used")


ext_modules = []
if os.path.exists(SRC):
    ext_modules.append(
        Extension(
            "tracehive.ingest._otlp_fast",
            sources=[SRC],
            extra_compile_args=["-O2", "-std=c11", "-Wall", "-Wextra", "-Werror=implicit-function-declaration"],
        )
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": OptionalBuildExt})
