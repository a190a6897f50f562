# Custom jobs (orthanc.CreateJob, Job.SubmitJob, orthanc.RegisterJobsUnserializer).
#
# POST /counters {"name", "total", "delay", "fail_at", "saved", "priority"} submits a job
# counting to "total"; GET /counters/events answers what the callbacks saw.

import json
import threading
import time

import orthanc

EVENTS = []
CHECKS = {}
LOCK = threading.Lock()


def record(*event):
    with LOCK:
        EVENTS.append(list(event))


class Counter:
    def __init__(self, name, total, delay=0.0, fail_at=None, saved=True, position=0):
        self.name, self.total, self.delay = name, total, delay
        self.fail_at, self.saved, self.position = fail_at, saved, position

    def step(self):
        time.sleep(self.delay)
        self.position += 1
        if self.position == self.fail_at:
            return orthanc.JobStepStatus.FAILURE
        if self.position >= self.total:
            return orthanc.JobStepStatus.SUCCESS
        return orthanc.JobStepStatus.CONTINUE

    def stop(self, reason):
        record(self.name, "stop", reason)

    def reset(self):
        record(self.name, "reset", self.position)
        self.position = 0

    def progress(self):
        return self.position / self.total

    def content(self):
        return json.dumps({"Name": self.name, "Position": self.position})

    def serialized(self):
        if not self.saved:
            return None
        return json.dumps({"name": self.name, "total": self.total, "delay": self.delay,
                           "fail_at": self.fail_at, "position": self.position})

    def job(self):
        return orthanc.CreateJob("PythonCounter", self.progress, self.content, self.serialized,
                                 self.step, self.stop, self.reset)


def unserialize(job_type, serialized):
    if job_type != "PythonCounter":
        return None
    data = json.loads(serialized)
    record(data["name"], "unserialize", dict(data))
    del data["Type"]
    return Counter(**data).job()


orthanc.RegisterJobsUnserializer(unserialize)


def attempt(function, *args):
    try:
        function(*args)
    except orthanc.OrthancException as e:
        return ["OrthancException", e.args[0]]
    except Exception as e:
        return [type(e).__name__]
    return ["ok"]


CHECKS["construct"] = attempt(orthanc.Job)
CHECKS["no_type"] = attempt(orthanc.CreateJob, "", *([print] * 6))
CHECKS["not_callable"] = attempt(orthanc.CreateJob, "T", *([print] * 5), None)


def submit(output, uri, **request):
    spec = json.loads(request["body"])
    priority = spec.pop("priority", 0)
    job = Counter(**spec).job()
    job_id = job.SubmitJob(priority)
    CHECKS["twice"] = attempt(job.SubmitJob, priority)
    output.AnswerBuffer(job_id, "text/plain")


def events(output, uri, **request):
    with LOCK:
        output.AnswerBuffer(json.dumps({"events": EVENTS, "checks": CHECKS}), "application/json")


orthanc.RegisterRestCallback("/counters", submit)
orthanc.RegisterRestCallback("/counters/events", events)
