"""The write side's news: the database's change record (``record``), the generations it names
in the cache (``generations``), the session hooks that publish this app's own commits at once
(``session_hooks``) and the listener that publishes everyone's (``listener``). Nothing here
knows how stats are counted or served."""
