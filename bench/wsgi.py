"""What the benchmark's gunicorn serves: the production app (``wsgi:app``) plus the floor route."""

from bench.floor import with_floor
from wsgi import app as _app

app = with_floor(_app)
