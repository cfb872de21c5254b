"""The read side: how a poll's numbers are counted (``query``), kept as cache entries
(``entries``), served (``answer``), prepared before midnight (``midnight``) and shown to
operators (``operators``). It depends on ``services.changes`` for freshness, never the reverse."""
