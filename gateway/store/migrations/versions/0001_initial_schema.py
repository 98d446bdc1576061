"""Initial schema: region, stock ledger, people, plans, readings, faults, tasks, dead letters, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 15:19:40.705123
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# The stock ledger is an audit trail: the database itself refuses to rewrite or delete it.
LEDGER_GUARD_PG = """
CREATE FUNCTION stock_ledger_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'stock_ledger is append-only';
END;
$$ LANGUAGE plpgsql
"""


def _create_ledger_guard() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(LEDGER_GUARD_PG)
        for verb in ("update", "delete"):
            op.execute(
                f"CREATE TRIGGER stock_ledger_no_{verb} BEFORE {verb.upper()} ON stock_ledger "
                "FOR EACH ROW EXECUTE FUNCTION stock_ledger_append_only()"
            )
    else:
        for verb in ("update", "delete"):
            op.execute(
                f"CREATE TRIGGER stock_ledger_no_{verb} BEFORE {verb.upper()} ON stock_ledger "
                "BEGIN SELECT RAISE(ABORT, 'stock_ledger is append-only'); END"
            )


def _drop_ledger_guard() -> None:
    for verb in ("update", "delete"):
        op.execute(
            f"DROP TRIGGER IF EXISTS stock_ledger_no_{verb}"
            + (" ON stock_ledger" if op.get_bind().dialect.name == "postgresql" else "")
        )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS stock_ledger_append_only()")


def upgrade() -> None:
    op.create_table(
        "communities",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("population", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name=op.f("ck_communities_coordinates")
        ),
        sa.CheckConstraint("population >= 0", name=op.f("ck_communities_population")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_communities")),
        sa.UniqueConstraint("slug", name=op.f("uq_communities_slug")),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("topic", sa.String(length=1024), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dead_letters_reason"), ["reason"], unique=False)
        batch_op.create_index(batch_op.f("ix_dead_letters_received_at"), ["received_at"], unique=False)

    op.create_table(
        "delivery_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("solver_status", sa.String(length=40), nullable=False),
        sa.Column("objective", sa.Double(), nullable=True),
        sa.Column(
            "summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('proposed', 'active', 'done', 'superseded')", name=op.f("ck_delivery_plans_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_delivery_plans")),
    )
    with op.batch_alter_table("delivery_plans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_delivery_plans_created_at"), ["created_at"], unique=False)

    op.create_table(
        "goods",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("unit", sa.String(length=20), nullable=False),
        sa.Column("sector", sa.String(length=16), nullable=False),
        sa.Column("essential", sa.Boolean(), nullable=False),
        sa.Column("perishability_hours", sa.Double(), nullable=True),
        sa.Column("weight_kg_per_unit", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "sector IN ('water', 'food', 'health', 'energy', 'other')", name=op.f("ck_goods_sector")
        ),
        sa.CheckConstraint(
            "perishability_hours IS NULL OR perishability_hours > 0", name=op.f("ck_goods_perishability")
        ),
        sa.CheckConstraint("weight_kg_per_unit >= 0", name=op.f("ck_goods_weight")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goods")),
        sa.UniqueConstraint("slug", name=op.f("uq_goods_slug")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("topic", sa.String(length=1024), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("qos", sa.Integer(), nullable=False),
        sa.Column("retain", sa.Boolean(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.CheckConstraint("attempts >= 0", name=op.f("ck_outbox_attempts")),
        sa.CheckConstraint("qos IN (0, 1, 2)", name=op.f("ck_outbox_qos")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_published_at_id"), ["published_at", "id"], unique=False)

    op.create_table(
        "members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("is_crew", sa.Boolean(), nullable=False),
        sa.Column("is_driver", sa.Boolean(), nullable=False),
        sa.Column("hours_per_week", sa.Double(), nullable=False),
        sa.Column(
            "availability",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=True,
        ),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("hours_per_week >= 0", name=op.f("ck_members_hours_per_week")),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name=op.f("ck_members_coordinates")
        ),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_members_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
    )
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_members_community_id"), ["community_id"], unique=False)

    op.create_table(
        "need_levels",
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("good_id", sa.Integer(), nullable=False),
        sa.Column("minimum", sa.Double(), nullable=False),
        sa.Column("target", sa.Double(), nullable=False),
        sa.CheckConstraint("minimum >= 0 AND target >= minimum", name=op.f("ck_need_levels_levels")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_need_levels_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["good_id"], ["goods.id"], name=op.f("fk_need_levels_good_id_goods")),
        sa.PrimaryKeyConstraint("community_id", "good_id", name=op.f("pk_need_levels")),
    )
    op.create_table(
        "sites",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=48), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("lat", sa.Double(), nullable=False),
        sa.Column("lon", sa.Double(), nullable=False),
        sa.Column("people_served", sa.Integer(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('farm', 'pump', 'storage', 'clinic', 'workshop')", name=op.f("ck_sites_kind")
        ),
        sa.CheckConstraint(
            "lat BETWEEN -90 AND 90 AND lon BETWEEN -180 AND 180", name=op.f("ck_sites_coordinates")
        ),
        sa.CheckConstraint("people_served >= 0", name=op.f("ck_sites_people_served")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_sites_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sites")),
        sa.UniqueConstraint("community_id", "slug", name=op.f("uq_sites_community_id_slug")),
    )
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sites_community_id"), ["community_id"], unique=False)

    op.create_table(
        "contributed_hours",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("sector", sa.String(length=16), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("hours", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "sector IN ('water', 'food', 'health', 'energy', 'education', 'maintenance', 'governance', 'other')",
            name=op.f("ck_contributed_hours_sector"),
        ),
        sa.CheckConstraint("hours >= 0", name=op.f("ck_contributed_hours_hours")),
        sa.ForeignKeyConstraint(
            ["member_id"],
            ["members.id"],
            name=op.f("fk_contributed_hours_member_id_members"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("member_id", "sector", "period_start", name=op.f("pk_contributed_hours")),
    )
    op.create_table(
        "devices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("slug", sa.String(length=48), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("credential_ref", sa.String(length=100), nullable=True),
        sa.Column("expected_interval_s", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("session", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.CheckConstraint("kind IN ('pump', 'soil', 'cold_room', 'stock')", name=op.f("ck_devices_kind")),
        sa.CheckConstraint(
            "state IN ('unknown', 'online', 'offline', 'stale', 'fault')", name=op.f("ck_devices_state")
        ),
        sa.CheckConstraint("expected_interval_s > 0", name=op.f("ck_devices_expected_interval_s")),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_devices_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
        sa.UniqueConstraint("slug", name=op.f("uq_devices_slug")),
    )
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_devices_site_id"), ["site_id"], unique=False)

    op.create_table(
        "member_skills",
        sa.Column("member_id", sa.Integer(), nullable=False),
        sa.Column("skill", sa.String(length=48), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_member_skills_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("member_id", "skill", name=op.f("pk_member_skills")),
    )
    op.create_table(
        "stock",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("good_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("quantity >= 0", name=op.f("ck_stock_quantity")),
        sa.ForeignKeyConstraint(["good_id"], ["goods.id"], name=op.f("fk_stock_good_id_goods")),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_stock_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("site_id", "good_id", name=op.f("pk_stock")),
    )
    op.create_table(
        "vehicles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("capacity_kg", sa.Double(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("community_id", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "kind IN ('car', 'pickup', 'van', 'truck', 'motorcycle', 'bicycle', 'boat')",
            name=op.f("ck_vehicles_kind"),
        ),
        sa.CheckConstraint("capacity_kg > 0", name=op.f("ck_vehicles_capacity")),
        sa.ForeignKeyConstraint(
            ["community_id"],
            ["communities.id"],
            name=op.f("fk_vehicles_community_id_communities"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_vehicles_member_id_members"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vehicles")),
    )
    with op.batch_alter_table("vehicles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_vehicles_member_id"), ["member_id"], unique=False)

    op.create_table(
        "device_state_changes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.CheckConstraint(
            "state IN ('unknown', 'online', 'offline', 'stale', 'fault')",
            name=op.f("ck_device_state_changes_state"),
        ),
        sa.ForeignKeyConstraint(
            ["device_id"],
            ["devices.id"],
            name=op.f("fk_device_state_changes_device_id_devices"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_device_state_changes")),
    )
    with op.batch_alter_table("device_state_changes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_device_state_changes_device_id_at"), ["device_id", "at"], unique=False
        )

    op.create_table(
        "faults",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=48), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("first_abnormal_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cleared_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "details",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "severity IN ('critical', 'high', 'medium', 'low')", name=op.f("ck_faults_severity")
        ),
        sa.CheckConstraint("status IN ('open', 'cleared')", name=op.f("ck_faults_status")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_faults_device_id_devices"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_faults_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_faults")),
    )
    with op.batch_alter_table("faults", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_faults_device_id"), ["device_id"], unique=False)

    op.create_table(
        "readings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "payload",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.CheckConstraint("kind IN ('telemetry', 'stock')", name=op.f("ck_readings_kind")),
        sa.CheckConstraint("seq >= 0", name=op.f("ck_readings_seq")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_readings_device_id_devices"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_readings")),
        sa.UniqueConstraint("device_id", "seq", name=op.f("uq_readings_device_id_seq")),
    )
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_readings_device_id_device_ts"), ["device_id", "device_ts"], unique=False
        )

    op.create_table(
        "routes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("vehicle_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("distance_km", sa.Double(), nullable=False),
        sa.Column("duration_min", sa.Double(), nullable=False),
        sa.CheckConstraint(
            "status IN ('proposed', 'accepted', 'declined', 'in_progress', 'done')",
            name=op.f("ck_routes_status"),
        ),
        sa.CheckConstraint("distance_km >= 0 AND duration_min >= 0", name=op.f("ck_routes_length")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_routes_member_id_members"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["delivery_plans.id"],
            name=op.f("fk_routes_plan_id_delivery_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["vehicle_id"], ["vehicles.id"], name=op.f("fk_routes_vehicle_id_vehicles"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_routes")),
    )
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_routes_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "repair_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("fault_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("urgency", sa.Integer(), nullable=False),
        sa.Column(
            "required_skills",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("assigned_member_id", sa.Integer(), nullable=True),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'assigned', 'accepted', 'in_progress', 'fixed_pending', 'closed', 'escalated')",
            name=op.f("ck_repair_tasks_status"),
        ),
        sa.CheckConstraint("urgency >= 0", name=op.f("ck_repair_tasks_urgency")),
        sa.ForeignKeyConstraint(
            ["assigned_member_id"],
            ["members.id"],
            name=op.f("fk_repair_tasks_assigned_member_id_members"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["fault_id"], ["faults.id"], name=op.f("fk_repair_tasks_fault_id_faults"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_repair_tasks_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_repair_tasks")),
        sa.UniqueConstraint("fault_id", name=op.f("uq_repair_tasks_fault_id")),
    )
    with op.batch_alter_table("repair_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_repair_tasks_site_id"), ["site_id"], unique=False)

    op.create_table(
        "shipments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("good_id", sa.Integer(), nullable=False),
        sa.Column("from_site_id", sa.Integer(), nullable=False),
        sa.Column("to_site_id", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Double(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("route_id", sa.Integer(), nullable=True),
        sa.Column("failure_reason", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "status IN ('planned', 'assigned', 'picked_up', 'delivered', 'failed', 'cancelled')",
            name=op.f("ck_shipments_status"),
        ),
        sa.CheckConstraint("from_site_id <> to_site_id", name=op.f("ck_shipments_distinct_sites")),
        sa.CheckConstraint("quantity > 0", name=op.f("ck_shipments_quantity")),
        sa.ForeignKeyConstraint(["from_site_id"], ["sites.id"], name=op.f("fk_shipments_from_site_id_sites")),
        sa.ForeignKeyConstraint(["good_id"], ["goods.id"], name=op.f("fk_shipments_good_id_goods")),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["delivery_plans.id"],
            name=op.f("fk_shipments_plan_id_delivery_plans"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["route_id"], ["routes.id"], name=op.f("fk_shipments_route_id_routes"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(["to_site_id"], ["sites.id"], name=op.f("fk_shipments_to_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shipments")),
    )
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_shipments_plan_id"), ["plan_id"], unique=False)

    op.create_table(
        "route_stops",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("route_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("shipment_id", sa.Integer(), nullable=True),
        sa.Column("eta", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.CheckConstraint("action IN ('pickup', 'delivery')", name=op.f("ck_route_stops_action")),
        sa.CheckConstraint("status IN ('pending', 'done', 'failed')", name=op.f("ck_route_stops_status")),
        sa.CheckConstraint("position >= 0", name=op.f("ck_route_stops_position")),
        sa.ForeignKeyConstraint(
            ["route_id"], ["routes.id"], name=op.f("fk_route_stops_route_id_routes"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["shipment_id"],
            ["shipments.id"],
            name=op.f("fk_route_stops_shipment_id_shipments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_route_stops_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_route_stops")),
        sa.UniqueConstraint("route_id", "position", name=op.f("uq_route_stops_route_id_position")),
    )
    op.create_table(
        "stock_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("good_id", sa.Integer(), nullable=False),
        sa.Column("delta", sa.Double(), nullable=False),
        sa.Column("quantity_after", sa.Double(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.Integer(), nullable=True),
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("shipment_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "source IN ('initial', 'sensor', 'delivery', 'adjustment')", name=op.f("ck_stock_ledger_source")
        ),
        sa.CheckConstraint("quantity_after >= 0", name=op.f("ck_stock_ledger_quantity_after")),
        sa.ForeignKeyConstraint(
            ["device_id"], ["devices.id"], name=op.f("fk_stock_ledger_device_id_devices")
        ),
        sa.ForeignKeyConstraint(["good_id"], ["goods.id"], name=op.f("fk_stock_ledger_good_id_goods")),
        sa.ForeignKeyConstraint(
            ["shipment_id"], ["shipments.id"], name=op.f("fk_stock_ledger_shipment_id_shipments")
        ),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], name=op.f("fk_stock_ledger_site_id_sites")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_stock_ledger")),
    )
    with op.batch_alter_table("stock_ledger", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_stock_ledger_site_id_good_id_created_at"),
            ["site_id", "good_id", "created_at"],
            unique=False,
        )

    op.create_table(
        "task_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("member_id", sa.Integer(), nullable=True),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "event IN ('created', 'assigned', 'accepted', 'declined', 'started', 'marked_fixed', 'confirmed', 'closed', 'reassigned', 'escalated')",
            name=op.f("ck_task_events_event"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_task_events_member_id_members"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["repair_tasks.id"],
            name=op.f("fk_task_events_task_id_repair_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_task_events")),
    )
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_task_events_task_id"), ["task_id"], unique=False)
    _create_ledger_guard()


def downgrade() -> None:
    _drop_ledger_guard()
    with op.batch_alter_table("task_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_task_events_task_id"))

    op.drop_table("task_events")
    with op.batch_alter_table("stock_ledger", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_stock_ledger_site_id_good_id_created_at"))

    op.drop_table("stock_ledger")
    op.drop_table("route_stops")
    with op.batch_alter_table("shipments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shipments_plan_id"))

    op.drop_table("shipments")
    with op.batch_alter_table("repair_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_repair_tasks_site_id"))

    op.drop_table("repair_tasks")
    with op.batch_alter_table("routes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_routes_plan_id"))

    op.drop_table("routes")
    with op.batch_alter_table("readings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_readings_device_id_device_ts"))

    op.drop_table("readings")
    with op.batch_alter_table("faults", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_faults_device_id"))

    op.drop_table("faults")
    with op.batch_alter_table("device_state_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_device_state_changes_device_id_at"))

    op.drop_table("device_state_changes")
    with op.batch_alter_table("vehicles", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_vehicles_member_id"))

    op.drop_table("vehicles")
    op.drop_table("stock")
    op.drop_table("member_skills")
    with op.batch_alter_table("devices", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_devices_site_id"))

    op.drop_table("devices")
    op.drop_table("contributed_hours")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sites_community_id"))

    op.drop_table("sites")
    op.drop_table("need_levels")
    with op.batch_alter_table("members", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_members_community_id"))

    op.drop_table("members")
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_published_at_id"))

    op.drop_table("outbox")
    op.drop_table("goods")
    with op.batch_alter_table("delivery_plans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_delivery_plans_created_at"))

    op.drop_table("delivery_plans")
    with op.batch_alter_table("dead_letters", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dead_letters_received_at"))
        batch_op.drop_index(batch_op.f("ix_dead_letters_reason"))

    op.drop_table("dead_letters")
    op.drop_table("communities")
