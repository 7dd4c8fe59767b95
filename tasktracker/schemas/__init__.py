"""marshmallow schemas: one declaration drives validation, OpenAPI and responses."""
