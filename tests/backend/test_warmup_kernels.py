"""Every compiled CPU kernel is one that ``stillflow prepare-engine`` compiles and checks."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from stillflow.stages import cpu_kernels
from stillflow.warmup import _dispatchers

STAGES = Path(cpu_kernels.__file__).parent


@pytest.mark.skipif(not cpu_kernels.available(), reason="numba is not installed: nothing to compile")
def test_the_warmup_knows_every_kernel_module() -> None:
    from numba.core.dispatcher import Dispatcher

    known = {id(kernel) for kernel in _dispatchers()}
    for path in sorted(STAGES.glob("cpu_*.py")):
        module = importlib.import_module(f"stillflow.stages.{path.stem}")
        kernels = [name for name, obj in vars(module).items()
                   if isinstance(obj, Dispatcher) and obj.targetoptions.get("inline") != "always"]
        missing = [name for name in kernels if id(getattr(module, name)) not in known]
        assert not missing, f"{path.name}: {missing} would compile silently on a first render"
