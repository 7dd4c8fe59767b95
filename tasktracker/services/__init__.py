"""Services: the rules. They take plain values and a unit of work, raise domain errors, and
never import Flask."""
