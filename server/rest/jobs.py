"""``/jobs`` routes, the Server-Sent Events stream, and the sync/async submission helper."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import TYPE_CHECKING, Any

import tornado.iostream

from server.errors import ErrorCode, OrthancError
from server.events import JobEvent, Kind
from server.jobs.job import Job, JobState
from server.rest.base import NoAnswer, OrthancHandler, Route, with_services
from server.rest.requests import JobOptions

if TYPE_CHECKING:
    from server.jobs.engine import JobsEngine

#: Job event kind -> its SSE event name in ``/jobs/events``.
SSE_EVENTS = {
    Kind.JOB_SUBMITTED: "submitted", Kind.JOB_RUNNING: "running", Kind.JOB_PROGRESS: "progress",
    Kind.JOB_PAUSED: "paused", Kind.JOB_RESUMED: "resumed", Kind.JOB_CANCELED: "canceled",
    Kind.JOB_RETRY: "retry", Kind.JOB_RESUBMITTED: "resubmitted",
    Kind.JOB_SUCCESS: "success", Kind.JOB_FAILURE: "failure",
}

#: A job event and the job's document when it was published (None: to be read).
_Described = tuple[JobEvent, "dict[str, Any] | None"]

#: Seconds between SSE comments that keep idle connections (and proxies) alive.
SSE_KEEPALIVE = 15.0


async def submit_job(handler: OrthancHandler, job: Job, options: JobOptions) -> None:
    """Submit ``job`` and answer as Orthanc: ``{ID, Path}`` when asynchronous, else its result.

    A synchronous caller that disconnects does not cancel the job: it runs to its
    end and stays in ``/jobs`` like any other.
    """
    engine = handler.jobs
    job_id = await handler.run(engine.submit, job, options.priority, options.user_data,
                               options.synchronous)
    if not options.synchronous:
        handler.answer_json({"ID": job_id, "Path": f"/jobs/{job_id}"})
        return
    record = await engine.wait(job_id)
    if record.state is not JobState.SUCCESS:
        payload = await handler.run(record.job.error_payload) or record.error_payload
        raise OrthancError(record.error_code, record.error_details or None, payload=payload)
    handler.answer_json(await handler.run(record.job.synchronous_answer))


class JobsHandler(OrthancHandler):
    jobs: JobsEngine

    async def get(self) -> None:
        self.answer_json(await self.run(self._list, self.flag("expand")))

    def _list(self, expand: bool) -> list[Any]:
        """Off the loop: the engine's lock may wait on a job saving its state to the index."""
        engine = self.jobs
        ids = engine.ids()
        if expand:
            return [d for d in (engine.describe(i) for i in ids) if d is not None]
        return ids


class JobHandler(OrthancHandler):
    jobs: JobsEngine

    async def get(self, job_id: str) -> None:
        document = await self.run(self.jobs.describe, job_id)
        if document is None:
            raise NoAnswer()
        self.answer_json(document)

    async def delete(self, job_id: str) -> None:
        if not await self.run(self.jobs.delete, job_id):
            raise NoAnswer()
        self.answer_json({})


class JobActionHandler(OrthancHandler):
    jobs: JobsEngine

    async def post(self, job_id: str, action: str) -> None:
        engine = self.jobs
        done = await self.run(getattr(engine, action), job_id)
        if not done:
            raise NoAnswer()
        self.set_header("Content-Type", "application/json")
        self.finish(b"{}\n")


class JobOutputHandler(OrthancHandler):
    jobs: JobsEngine

    async def get(self, job_id: str, key: str) -> None:
        output = await self.run(self.jobs.output, job_id, key)
        if output is None:
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"Job has no such output: {key}")
        self.set_header("Content-Type", output.mime)
        self.set_header("Content-Disposition", f'filename="{output.filename}"')
        size = (await self.run(output.path.stat)).st_size
        self.set_header("Content-Length", str(size))
        with await self.run(open, output.path, "rb") as f:
            while chunk := await self.run(f.read, 1024 * 1024):
                self.write(chunk)
                await self.flush()
        await self.finish()

    async def delete(self, job_id: str, key: str) -> None:
        if not await self.run(self.jobs.delete_output, job_id, key):
            raise OrthancError(ErrorCode.INEXISTENT_ITEM, f"Job has no such output: {key}")
        self.answer_json({})


class JobEventsHandler(OrthancHandler):
    """``GET /jobs/events[?job=ID]``: job state and progress as Server-Sent Events (in a
    cluster, those of every node)."""

    jobs: JobsEngine

    async def get(self) -> None:
        wanted = self.get_argument("job", None)
        loop = asyncio.get_running_loop()
        on_loop = threading.get_ident()
        queue: asyncio.Queue[_Described] = asyncio.Queue(maxsize=10000)

        def listener(event: JobEvent) -> None:
            """The job's document as the event leaves it, read by the thread that publishes
            it: read when the stream writes the event, it could already say what a later
            event did (a retry's State said Failure once the job was canceled)."""
            if wanted is None or event.job_id == wanted:
                document = None if threading.get_ident() == on_loop else self.jobs.describe(event.job_id)
                loop.call_soon_threadsafe(_offer, queue, (event, document))

        self.jobs.watch(listener)
        try:
            self.set_header("Content-Type", "text/event-stream")
            self.set_header("Cache-Control", "no-cache")
            self.write(": connected\n\n")
            await self.flush()
            await self._stream(queue)
        except tornado.iostream.StreamClosedError:
            pass
        finally:
            self.jobs.unwatch(listener)

    async def _stream(self, queue: asyncio.Queue[_Described]) -> None:
        while True:
            try:
                event, document = await asyncio.wait_for(queue.get(), timeout=SSE_KEEPALIVE)
            except TimeoutError:
                self.write(": keep-alive\n\n")
                await self.flush()
                continue
            if document is None:  # (published from the loop, which takes no lock)
                document = await self.run(self.jobs.describe, event.job_id) or {}
            data = {"ID": event.job_id, "State": document.get("State"),
                    "Progress": document.get("Progress"), "Type": document.get("Type")}
            if document.get("State") == "Failure":
                data["ErrorCode"] = document["ErrorCode"]
                data["ErrorDescription"] = document["ErrorDescription"]
            self.write(f"event: {SSE_EVENTS[event.kind]}\ndata: {json.dumps(data)}\n\n")
            await self.flush()


def _offer(queue: asyncio.Queue[_Described], item: _Described) -> None:
    if not queue.full():
        queue.put_nowait(item)


def paths() -> list[tuple[str, type]]:
    return [
        (r"/jobs", JobsHandler),
        (r"/jobs/events", JobEventsHandler),
        (r"/jobs/([^/]+)", JobHandler),
        (r"/jobs/([^/]+)/(pause|resume|cancel|resubmit)", JobActionHandler),
        (r"/jobs/([^/]+)/([^/]+)", JobOutputHandler),
    ]


def routes(*, jobs: JobsEngine) -> list[Route]:
    """The routes, each handler given the services it uses."""
    return with_services(paths(), jobs=jobs)
