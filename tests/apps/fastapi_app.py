"""A FastAPI app as its users write it, served by uvicorn's own process
(not `uvicorn --workers`), for the reload tests and
bench/launcher/reload.sh:

    VENV=$(tests/apps/setup-python-apps.sh)
    $VENV/bin/uvicorn --app-dir tests/apps fastapi_app:app --port $PORT
    $VENV/bin/uvicorn --app-dir tests/apps fastapi_app:app --fd 3   # corefit --socket shared

GET / answers {"pid": N}. START_DELAY (seconds, "3" or "3s") is spent in
the lifespan's startup, which uvicorn runs before it accepts, as a slow
boot (a database pool...) would. SIGTERM is uvicorn's own graceful stop.
"""

import asyncio
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI


@asynccontextmanager
async def lifespan(_app: FastAPI):
    await asyncio.sleep(float(os.environ.get("START_DELAY", "0").rstrip("s") or 0))
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/")
async def root():
    return {"pid": os.getpid()}
