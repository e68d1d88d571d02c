"""Warehouse interface and implementations."""

from tapwire_core.warehouse.base import (
    Params,
    QueryLimits,
    Warehouse,
    WarehouseError,
    WarehouseUnavailable,
)

__all__ = ["Params", "QueryLimits", "Warehouse", "WarehouseError", "WarehouseUnavailable"]
