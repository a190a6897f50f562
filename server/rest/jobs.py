"""``/jobs`` routes, the Server-Sent Events stream, and the sync/async submission helper."""

from __future__ import annotations

import asyncio
import json

import tornado.iostream

from server import events
from server.errors import ErrorCode, OrthancError
from server.jobs.job import Job, JobState
from server.rest.base import NoAnswer, OrthancHandler
from server.rest.requests import JobOptions

#: Bus event kind -> the SSE event name of ``/jobs/events``.
SSE_EVENTS = {
    events.JOB_SUBMITTED: "submitted", "job_running": "running", "job_progress": "progress",
    "job_paused": "paused", "job_resumed": "resumed", "job_canceled": "canceled",
    "job_retry": "retry", "job_resubmitted": "resubmitted",
    events.JOB_SUCCESS: "success", events.JOB_FAILURE: "failure",
}

#: Seconds between SSE comments that keep idle connections (and proxies) alive.
SSE_KEEPALIVE = 15.0


async def submit_job(handler: OrthancHandler, job: Job, options: JobOptions) -> None:
    """Submit ``job`` and answer as Orthanc: ``{ID, Path}`` when asynchronous, else its result.

    A synchronous caller that disconnects does not cancel the job: it runs to its
    end and stays in ``/jobs`` like any other.
    """
    engine = handler.ctx.jobs
    job_id = await handler.run(engine.submit, job, options.priority)
    if not options.synchronous:
        handler.answer_json({"ID": job_id, "Path": f"/jobs/{job_id}"})
        return
    record = await engine.wait(job_id)
    if record.state is not JobState.SUCCESS:
        raise OrthancError(record.error_code, record.error_details or None)
    handler.answer_json(await handler.run(record.job.synchronous_answer))


class JobsHandler(OrthancHandler):
    async def get(self) -> None:
        engine = self.ctx.jobs
        ids = engine.ids()
        if self.flag("expand"):
            self.answer_json([d for d in (engine.describe(i) for i in ids) if d is not None])
        else:
            self.answer_json(ids)


class JobHandler(OrthancHandler):
    async def get(self, job_id: str) -> None:
        document = self.ctx.jobs.describe(job_id)
        if document is None:
            raise NoAnswer()
        self.answer_json(document)

    async def delete(self, job_id: str) -> None:
        if not await self.run(self.ctx.jobs.delete, job_id):
            raise NoAnswer()
        self.answer_json({})


class JobActionHandler(OrthancHandler):
    async def post(self, job_id: str, action: str) -> None:
        engine = self.ctx.jobs
        done = await self.run(getattr(engine, action), job_id)
        if not done:
            raise NoAnswer()
        self.set_header("Content-Type", "application/json")
        self.finish(b"{}\n")


class JobOutputHandler(OrthancHandler):
    async def get(self, job_id: str, key: str) -> None:
        output = self.ctx.jobs.output(job_id, key)
        if output is None:
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"Job has no such output: {key}")
        self.set_header("Content-Type", output.mime)
        self.set_header("Content-Disposition", f'filename="{output.filename}"')
        self.set_header("Content-Length", str(output.path.stat().st_size))
        with open(output.path, "rb") as f:
            while chunk := await self.run(f.read, 1024 * 1024):
                self.write(chunk)
                await self.flush()
        await self.finish()

    async def delete(self, job_id: str, key: str) -> None:
        if not await self.run(self.ctx.jobs.delete_output, job_id, key):
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"Job has no such output: {key}")
        self.answer_json({})


class JobEventsHandler(OrthancHandler):
    """``GET /jobs/events[?job=ID]``: job state and progress as Server-Sent Events."""

    async def get(self) -> None:
        wanted = self.get_argument("job", None)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, dict]] = asyncio.Queue(maxsize=10000)

        def listener(event: events.Event) -> None:
            job_id = event.payload["job_id"]
            if wanted is None or job_id == wanted:
                loop.call_soon_threadsafe(_offer, queue, (event.kind, dict(event.payload)))

        for kind in SSE_EVENTS:
            self.ctx.bus.subscribe(kind, listener)
        try:
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
            self.write(": connected\n\n")
            await self.flush()
            await self._stream(queue)
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            for kind in SSE_EVENTS:
                self.ctx.bus.unsubscribe(kind, listener)

    async def _stream(self, queue: asyncio.Queue[tuple[str, dict]]) -> None:
        while True:
            try:
                kind, payload = await asyncio.wait_for(queue.get(), timeout=SSE_KEEPALIVE)
            except TimeoutError:
                self.write(": keep-alive\n\n")
                await self.flush()
                continue
            document = self.ctx.jobs.describe(payload["job_id"]) or {}
            data = {"ID": payload["job_id"], "State": document.get("State"),
                    "Progress": document.get("Progress"), "Type": document.get("Type")}
            if document.get("State") == "Failure":
                data["ErrorCode"] = document["ErrorCode"]
                data["ErrorDescription"] = document["ErrorDescription"]
            self.write(f"event: {SSE_EVENTS[kind]}\ndata: {json.dumps(data)}\n\n")
            await self.flush()


def _offer(queue: asyncio.Queue, item: tuple[str, dict]) -> None:
    if not queue.full():
        queue.put_nowait(item)


def routes() -> list[tuple[str, type]]:
    return [
        (r"/jobs", JobsHandler),
        (r"/jobs/events", JobEventsHandler),
        (r"/jobs/([^/]+)", JobHandler),
        (r"/jobs/([^/]+)/(pause|resume|cancel|resubmit)", JobActionHandler),
        (r"/jobs/([^/]+)/([^/]+)", JobOutputHandler),
    ]
