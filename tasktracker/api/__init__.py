"""HTTP entrypoints: thin flask-smorest blueprints that parse, call a service, and answer."""

from __future__ import annotations

from flask_smorest import Api


def register_blueprints(api: Api) -> None:
    from . import auth, health, imports, reports, task_logs, tasks, users

    for module in (health, auth, users, tasks, task_logs, reports, imports):
        for blueprint in module.BLUEPRINTS:
            api.register_blueprint(blueprint)
