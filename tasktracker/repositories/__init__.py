"""Repositories: all SQL lives here. They add, get and query; they never commit."""
