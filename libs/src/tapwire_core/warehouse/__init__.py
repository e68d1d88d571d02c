"""Warehouse interface and implementations."""

from tapwire_core.warehouse.base import Params, Warehouse, WarehouseError, WarehouseUnavailable

__all__ = ["Params", "Warehouse", "WarehouseError", "WarehouseUnavailable"]
