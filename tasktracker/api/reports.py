"""Reports over the daily task logs: /api/v1/reports/daily."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from ..auth.flask import auth_required, current_actor
from ..schemas.task_logs import DailyReportSchema, ReportArgs
from ..services import reports as report_service
from .base import ApiBlueprint
from .deps import container

blp = ApiBlueprint(
    "reports", __name__, url_prefix="/api/v1/reports", description="Reports over the task logs"
)


@blp.route("/daily")
class DailyReportView(MethodView):
    @auth_required()
    @blp.arguments(ReportArgs, location="query")
    @blp.response(200, DailyReportSchema)
    @blp.errors(401, 422)
    def get(self, args: dict[str, Any]) -> report_service.DailyReport:
        """Per day from 'from' to 'to': logged tasks counted by status and by priority"""
        c = container()
        return report_service.daily_report(
            c.uow(),
            current_actor(),
            tz=c.settings.tz,
            date_from=args.get("date_from"),
            date_to=args.get("date_to"),
        )


BLUEPRINTS = [blp]
