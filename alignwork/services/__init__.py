"""Business logic as plain functions of plain values: no request, no ``g``, no JSON."""
