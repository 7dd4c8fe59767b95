"""The audit trail: append events, read an entity's history."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ..context import request_id_var
from ..models import AuditEvent


class AuditRepository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def record(
        self,
        *,
        actor_id: int | None,
        action: str,
        entity: str,
        entity_id: str | int | None,
        changes: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> AuditEvent:
        event = AuditEvent(
            actor_id=actor_id,
            action=action,
            entity=entity,
            entity_id=None if entity_id is None else str(entity_id),
            changes=changes,
            request_id=request_id or request_id_var.get(),
        )
        self.session.add(event)
        return event

    def history(
        self, entity: str, entity_id: str | int, page: int, per_page: int
    ) -> tuple[list[AuditEvent], int]:
        where = (AuditEvent.entity == entity, AuditEvent.entity_id == str(entity_id))
        total = self.session.scalar(select(func.count()).select_from(AuditEvent).where(*where)) or 0
        events = self.session.scalars(
            select(AuditEvent)
            .where(*where)
            .order_by(AuditEvent.id)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        return list(events), total
