"""The store's tables (SQLAlchemy 2.0 typed models); sessions are owned by the caller."""

from gateway.store.models.access import BrokerCredential
from gateway.store.models.base import Base, utcnow
from gateway.store.models.board import BoardTask, SectorGoal, SlotSignup, TaskShift, TaskSlot
from gateway.store.models.federation import FedFact, FedHelp, FedNode
from gateway.store.models.links import BridgeLink
from gateway.store.models.ops import (
    DeadLetter,
    DeviceStateChange,
    Fault,
    OutboxMessage,
    Reading,
    RepairTask,
    TaskEvent,
)
from gateway.store.models.people import Decline, HoursEntry, Member, MemberSkill, Vehicle
from gateway.store.models.plans import (
    DeliveryPlan,
    DriverAction,
    PlannerControl,
    PlanRun,
    Route,
    RouteStop,
    Shipment,
)
from gateway.store.models.region import Community, Device, Good, NeedLevel, Site, Stock, StockLedgerEntry
from gateway.store.models.security import LoginFailures, SecurityEvent, WebSession

__all__ = [
    "Base",
    "BoardTask",
    "BridgeLink",
    "BrokerCredential",
    "Community",
    "DeadLetter",
    "Decline",
    "DeliveryPlan",
    "Device",
    "DeviceStateChange",
    "DriverAction",
    "Fault",
    "FedFact",
    "FedHelp",
    "FedNode",
    "Good",
    "HoursEntry",
    "LoginFailures",
    "Member",
    "MemberSkill",
    "NeedLevel",
    "OutboxMessage",
    "PlanRun",
    "PlannerControl",
    "Reading",
    "RepairTask",
    "Route",
    "RouteStop",
    "SectorGoal",
    "SecurityEvent",
    "Shipment",
    "Site",
    "SlotSignup",
    "Stock",
    "StockLedgerEntry",
    "TaskEvent",
    "TaskShift",
    "TaskSlot",
    "Vehicle",
    "WebSession",
    "utcnow",
]
