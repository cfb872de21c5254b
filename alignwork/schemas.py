"""marshmallow schemas: what the API accepts and returns, in the client's camelCase.

flask-smorest builds the OpenAPI document from these, so the docs cannot drift from behaviour.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone

from marshmallow import Schema, ValidationError, fields, post_load, validate, validates_schema

from .models import STATUSES, TENANT_ID_PATTERN
from .periods import InvalidTimezone, parse_timezone

MAX_ID = 2**31 - 1  # ids are 32-bit integer columns on every backend
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(2100, 1, 1, tzinfo=timezone.utc)


class UTCDateTime(fields.AwareDateTime):
    """Reads ISO 8601 with an offset (a naive time is an error, never a guess); writes UTC ``Z``."""

    def __init__(self, **kwargs):
        kwargs.setdefault("validate", validate.Range(
            min=EARLIEST, max=LATEST, max_inclusive=False,
            error="Must be between 2000-01-01 and 2100-01-01.",
        ))
        super().__init__(format="iso", **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(timezone.utc)
        except OverflowError:  # 0001-01-01T00:00+00:01 has no UTC equivalent
            raise ValidationError("Must be between 2000-01-01 and 2100-01-01.") from None

    def _serialize(self, value, attr, obj, **kwargs):
        if value is None:
            return None
        return value.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _tenant_id(value: str) -> None:
    """The whole value must be a slug: ``validate.Regexp`` matches from the start only, and the
    pattern's ``$`` also matches before a trailing newline (``acme%0a`` would pass)."""
    if re.fullmatch(TENANT_ID_PATTERN, value) is None:
        raise ValidationError("Not a valid tenant id.")


def tenant_id_field(**kwargs) -> fields.String:
    return fields.String(
        validate=_tenant_id,
        metadata={"description": "Tenant slug; optional, and if given it must be the bearer token's tenant."},
        **kwargs,
    )


class NoQuerySchema(Schema):
    """The query of an operation that takes no parameters: any given is refused, as an unknown
    one is everywhere (the blueprints' parser loads queries with ``unknown=RAISE``)."""


class TenantQuerySchema(Schema):
    tenantId = tenant_id_field()


# -- patients -----------------------------------------------------------------------------


class PatientCreateSchema(Schema):
    tenantId = tenant_id_field(load_only=True)
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))


class PatientSchema(Schema):
    id = fields.Integer(dump_only=True)
    tenantId = fields.String(attribute="tenant_id", dump_only=True)
    name = fields.String(dump_only=True)
    createdAt = UTCDateTime(attribute="created_at", dump_only=True)


PAGE_SIZE = validate.Range(min=1, max=100)  # more is a 400, never a silent clamp
# A key of the loaded arguments: the old spellings the request used (see PageQuerySchema).
OLD_SPELLINGS = "oldSpellings"


class PageQuerySchema(TenantQuerySchema):
    """``page`` and ``pageSize``, in the camelCase of the rest of the API.

    ``page_size`` is the old spelling, still accepted for one release: it loads as ``pageSize``,
    and ``OLD_SPELLINGS`` names it, for the view to answer with a ``Deprecation`` header."""

    page = fields.Integer(load_default=1, validate=validate.Range(min=1, max=1_000_000))
    pageSize = fields.Integer(load_default=50, validate=PAGE_SIZE, metadata={"description": "Rows per page."})
    page_size = fields.Integer(validate=PAGE_SIZE, metadata={
        "deprecated": True,
        "description": "The old spelling of pageSize, accepted until the next release; answered with "
                       "`Deprecation: true`."})

    @validates_schema(pass_original=True)
    def _one_spelling(self, data, original_data, **kwargs):
        if "pageSize" in original_data and "page_size" in original_data:
            raise ValidationError("Give pageSize only: page_size is its old spelling.",
                                  field_name="page_size")

    @post_load
    def _new_spelling(self, data, **kwargs):
        if "page_size" in data:
            data["pageSize"] = data.pop("page_size")
            data[OLD_SPELLINGS] = ("page_size",)
        return data


class PageSchema(Schema):
    """A page of a list. Its keys were snake_case until this release, and are sent in both
    spellings for this one, so clients can move before the old ones go."""

    total = fields.Integer(dump_only=True)
    page = fields.Integer(dump_only=True)
    pageSize = fields.Integer(attribute="page_size", dump_only=True)
    totalPages = fields.Integer(attribute="total_pages", dump_only=True)
    page_size = fields.Integer(dump_only=True, metadata={
        "deprecated": True, "description": "The old spelling of pageSize; gone in the next release."})
    total_pages = fields.Integer(dump_only=True, metadata={
        "deprecated": True, "description": "The old spelling of totalPages; gone in the next release."})


class PatientPageSchema(PageSchema):
    data = fields.List(fields.Nested(PatientSchema), attribute="items")


# -- appointments -------------------------------------------------------------------------

STATUS = validate.OneOf(STATUSES)


class AppointmentCreateSchema(Schema):
    tenantId = tenant_id_field(load_only=True)
    patientId = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=MAX_ID))
    startsAt = UTCDateTime(required=True, metadata={"description": "With an offset: Z or ±hh:mm."})
    durationMin = fields.Integer(required=True, strict=True, validate=validate.Range(min=1, max=1440))
    status = fields.String(load_default="pending", validate=STATUS)


class AppointmentUpdateSchema(Schema):
    tenantId = tenant_id_field(load_only=True)
    startsAt = UTCDateTime()
    durationMin = fields.Integer(strict=True, validate=validate.Range(min=1, max=1440))
    status = fields.String(validate=STATUS)

    @validates_schema
    def _something_to_change(self, data, **kwargs):
        if not data.keys() - {"tenantId"}:
            raise ValidationError("Give at least one of status, startsAt, durationMin.")


class AppointmentSchema(Schema):
    id = fields.Integer()
    tenantId = fields.String(attribute="tenant_id")
    patientId = fields.Integer(attribute="patient_id")
    startsAt = UTCDateTime(attribute="starts_at")
    durationMin = fields.Integer(attribute="duration_min")
    status = fields.String()
    createdAt = UTCDateTime(attribute="created_at")
    updatedAt = UTCDateTime(attribute="updated_at")


class AppointmentListQuerySchema(PageQuerySchema):
    from_ = UTCDateTime(data_key="from", metadata={"description": "Inclusive start, with an offset."})
    to = UTCDateTime(metadata={"description": "Exclusive end, with an offset."})
    status = fields.String(validate=STATUS)

    @validates_schema
    def _ordered(self, data, **kwargs):
        if "from_" in data and "to" in data and data["from_"] >= data["to"]:
            raise ValidationError("Must be later than from.", field_name="to")


class AppointmentPageSchema(PageSchema):
    data = fields.List(fields.Nested(AppointmentSchema), attribute="items")


# -- stats --------------------------------------------------------------------------------


class Timezone(fields.String):
    """An IANA key in, a ``ZoneInfo`` out: the zone is parsed here, once, at the edge."""

    def _deserialize(self, value, attr, data, **kwargs):
        name = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parse_timezone(name)
        except InvalidTimezone as exc:
            raise ValidationError(str(exc)) from exc


class StatsQuerySchema(TenantQuerySchema):
    tz = Timezone(metadata={"description": "IANA time zone; defaults to the tenant's."})


class StreamQuerySchema(StatsQuerySchema):
    """The stream's query: mega-stats' own, a ticket instead of the Authorization header (for
    ``EventSource``), and the event a reconnecting client last had."""

    ticket = fields.String(validate=validate.Length(min=1, max=64), metadata={
        "description": "A stream ticket (POST /api/v1/stream-tickets), for clients that cannot send "
                       "Authorization; single use."})
    lastEventId = fields.String(validate=validate.Length(max=128), metadata={
        "description": "As the Last-Event-ID header: the id of the last event received (an ETag)."})


class StreamTicketRequestSchema(Schema):
    tenantId = tenant_id_field()


class StreamTicketSchema(Schema):
    ticket = fields.String(metadata={"description": "Pass as ?ticket= to the stream, once."})
    expiresIn = fields.Integer(metadata={"description": "Seconds the ticket stays valid (at most 60)."})


class CountsSchema(Schema):
    confirmed = fields.Integer()
    pending = fields.Integer()


class MegaStatsSchema(Schema):
    today = fields.Nested(CountsSchema)
    week = fields.Nested(CountsSchema)
    month = fields.Nested(CountsSchema)
    nextMonth = fields.Nested(CountsSchema)


# -- tenant -------------------------------------------------------------------------------


class TenantSchema(Schema):
    """The tenant a token acts for, as a dashboard heads its page with it. The name is free text
    (``Clínica São José``), which is why it travels in a body and never in a header."""

    id = fields.String(dump_only=True, metadata={"description": "Tenant slug."})
    name = fields.String(dump_only=True, metadata={"description": "The clinic's name, as given at creation."})
    timezone = fields.String(dump_only=True, metadata={
        "description": "The tenant's IANA time zone: mega-stats counts in it unless asked for another."})
