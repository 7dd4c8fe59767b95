"""Authentication and authorisation: passwords, tokens, the permission policy, Flask glue."""
