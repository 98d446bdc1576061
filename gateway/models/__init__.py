"""The store's tables (SQLAlchemy 2.0 typed models); sessions are owned by the caller."""

from gateway.models.access import BrokerCredential
from gateway.models.base import Base, utcnow
from gateway.models.ops import (
    DeadLetter,
    DeviceStateChange,
    Fault,
    OutboxMessage,
    Reading,
    RepairTask,
    TaskEvent,
)
from gateway.models.people import ContributedHours, Member, MemberSkill, Vehicle
from gateway.models.plans import DeliveryPlan, Route, RouteStop, Shipment
from gateway.models.region import Community, Device, Good, NeedLevel, Site, Stock, StockLedgerEntry

__all__ = [
    "Base",
    "BrokerCredential",
    "Community",
    "ContributedHours",
    "DeadLetter",
    "DeliveryPlan",
    "Device",
    "DeviceStateChange",
    "Fault",
    "Good",
    "Member",
    "MemberSkill",
    "NeedLevel",
    "OutboxMessage",
    "Reading",
    "RepairTask",
    "Route",
    "RouteStop",
    "Shipment",
    "Site",
    "Stock",
    "StockLedgerEntry",
    "TaskEvent",
    "Vehicle",
    "utcnow",
]
