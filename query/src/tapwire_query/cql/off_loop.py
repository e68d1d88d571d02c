"""Parsing and compiling queries off the event loop.

Validating a query body of up to a megabyte and compiling it is CPU work in proportion to its size; on the
event loop it would stall every other request of the process meanwhile. Callers on the loop hand that work to
``off_loop``, which runs it on a small pool of threads of its own: the loop keeps its turn (the interpreter
switches threads every few milliseconds), and a flood of large queries waits in this pool's queue instead of
taking the threads the warehouse and the control store run on.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Final, ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

# Two threads: compiles run in parallel with the loop, and this process's share of the cores stays bounded.
_COMPILER: Final = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cql")


async def off_loop(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
    """``fn(*args, **kwargs)`` on the compiler's threads; raises what ``fn`` raises (``CqlError``, …)."""
    return await asyncio.get_running_loop().run_in_executor(_COMPILER, functools.partial(fn, *args, **kwargs))
