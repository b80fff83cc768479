"""`with torch.autocast(...)` inside traced code: the region is part of the graph.

Calling `torch.autocast(device_type, dtype, enabled, cache_enabled)` makes an `Autocast` tracker (its defaults
read from global state, guarded by their answer); entering it records `torch.amp._enter_autocast` as a graph
node and enters the same autocast for real, so the fake ops inside are cast as eager would cast them, and its
exit records `torch.amp._exit_autocast`.  aot_autograd and inductor understand these nodes (as they do
Dynamo's).  A graph break, or a query of autocast state, inside a region cannot be modelled: the trace
restarts with autocast calls left to Python for this code object (`AutocastRestart`).
"""
from __future__ import annotations

import torch

from . import protocol
from .. import trackers
from ..errors import GraphBreak

AUTOCAST_CLASS = torch.amp.autocast_mode.autocast


class AutocastRestart(Exception):
    """A region could not be traced into the graph: trace again with `torch.autocast` calls as graph breaks."""


def make(f, values: list, kw: dict):
    """`torch.autocast(...)` called with these Python values."""
    names = ("device_type", "dtype", "enabled", "cache_enabled")
    given = dict(zip(names, values), **kw)
    if set(given) - set(names) or "device_type" not in given:
        raise GraphBreak("torch.autocast called with arguments the tracer does not model")
    device = given["device_type"]
    guards = f.trace.guards
    if given.get("dtype") is None:
        given["dtype"] = torch.get_autocast_dtype(device)
        guards.state_query(torch.get_autocast_dtype, "torch.get_autocast_dtype", [device], {}, given["dtype"])
    if given.get("cache_enabled") is None:
        given["cache_enabled"] = torch.is_autocast_cache_enabled()
        guards.state_query(torch.is_autocast_cache_enabled, "torch.is_autocast_cache_enabled", [], {},
                           given["cache_enabled"])
    checked = AUTOCAST_CLASS(device, given["dtype"], given.get("enabled", True), given["cache_enabled"])
    return trackers.Autocast(checked.device, checked.fast_dtype, checked._enabled, checked._cache_enabled)


@protocol.register("enter", trackers.Autocast)
def enter(f, ctx: trackers.Autocast):
    """`with torch.autocast(...) as ctx:` -> (the region's exit, ctx)."""
    state = (ctx.device_type, ctx.dtype, ctx.enabled, ctx.cache_enabled)
    node = f.trace.builder.change_state(torch.amp._enter_autocast, state)
    mode = torch.amp._enter_autocast(*state)          # the fake ops inside run under it
    f.trace.autocast_open.append(mode)
    f.trace.autocast_regions += 1
    return trackers.AutocastExit(node, mode), ctx


@protocol.register("call", trackers.AutocastExit)
def exit_(f, region: trackers.AutocastExit, args, kwargs):
    """The `__exit__` a traced autocast `with` block left on the stack."""
    f.trace.builder.change_state(torch.amp._exit_autocast, (region.node,)).meta["val"] = None
    f.trace.autocast_open.remove(region.mode)
    torch.amp._exit_autocast(region.mode)
    return trackers.Known(None)


def close_all(trace):
    """The trace ended (or failed) with regions open: leave autocast as it was before the trace."""
    while trace.autocast_open:
        torch.amp._exit_autocast(trace.autocast_open.pop())
