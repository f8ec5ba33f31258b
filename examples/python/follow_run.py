#!/usr/bin/env python3
"""Follow one runrec run and print its events as JSON Lines, exactly once and in order.

Uses only pyzmq (Debian: python3-zmq) and the wire format in docs/events-wire.md; no
runrec code. One address is all it needs: the engine's event endpoint.

    follow_run.py ipc:///tmp/runrec-<hash>.events [RUN_ID | last | next]

RUN_ID (full id), `last` (the newest run in the log) or `next` (the run of the next live
event; the default). Exits 0 after the run's runFinished, 2 on an unknown run, 3 when no
engine answers.
"""
import json
import sys

import zmq

TIMEOUT_MS = 5000
IDLE_MS = 300


def history_endpoint(events):
    """hist(V): ipc://p -> ipc://p.history, tcp://h:P -> tcp://h:(P+1)."""
    if events.startswith("tcp://"):
        host, port = events[len("tcp://"):].rsplit(":", 1)
        return "tcp://%s:%d" % (host, int(port) + 1)
    return events + ".history"


class History:
    """REQ client; a REQ socket that lost its reply is replaced (lazy pirate)."""

    def __init__(self, ctx, endpoint):
        self.ctx, self.endpoint, self.sock = ctx, endpoint, None
        self._open()

    def _open(self):
        if self.sock is not None:
            self.sock.close(linger=0)
        self.sock = self.ctx.socket(zmq.REQ)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(self.endpoint)

    def ask(self, request):
        self.sock.send(json.dumps(dict(request, v=1)).encode())
        if not self.sock.poll(TIMEOUT_MS):
            self._open()
            sys.stderr.write("follow_run: no engine answered at %s\n" % self.endpoint)
            sys.exit(3)
        reply = json.loads(self.sock.recv())
        if not reply.get("ok"):
            sys.stderr.write("follow_run: %s\n" % reply.get("error"))
            sys.exit(2)
        return reply


def main():
    if len(sys.argv) < 2:
        sys.stderr.write(__doc__)
        return 2
    events_ep = sys.argv[1]
    which = sys.argv[2] if len(sys.argv) > 2 else "next"
    ctx = zmq.Context()
    history = History(ctx, history_endpoint(events_ep))

    # Live first: subscribe before reading history, so nothing falls between the two.
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.LINGER, 0)
    sub.setsockopt(zmq.RCVHWM, 1000)
    run_id = None
    if which == "last":
        runs = history.ask({"op": "runs", "limit": 1})["runs"]
        if not runs:
            sys.stderr.write("follow_run: no runs yet\n")
            return 2
        run_id = runs[0]["runId"]
    elif which != "next":
        run_id = which
    sub.setsockopt(zmq.SUBSCRIBE, ("run/%s/" % run_id if run_id else "run/").encode())
    sub.connect(events_ep)

    delivered = 0
    finished = False

    def emit(event):
        nonlocal delivered, finished
        print(json.dumps(event, sort_keys=True), flush=True)
        delivered = event["seq"]
        finished = event["type"] == "runFinished"

    def catch_up():
        """Deliver everything history has after `delivered`, page by page."""
        while not finished:
            page = history.ask({"op": "events", "runId": run_id, "fromSeq": delivered + 1, "limit": 1000})
            for event in page["events"]:
                emit(event)
            if not page["events"] or delivered >= page["lastSeq"]:
                return

    if run_id:
        catch_up()  # checks the run exists, and reads what happened before we joined
    while not finished:
        if not sub.poll(IDLE_MS):
            if run_id:
                catch_up()  # quiet: anything lost at the tail (we fell behind our HWM)?
            continue
        _topic, body = sub.recv_multipart()[:2]
        event = json.loads(body)
        if run_id is None:
            run_id = event["runId"]  # `next`: follow the run of the first live event
        if event["runId"] != run_id or event["seq"] <= delivered:
            continue  # another run, or already delivered from history
        if event["seq"] > delivered + 1:
            catch_up()  # a gap: backfill from history, in order
        if not finished and event["seq"] == delivered + 1:
            emit(event)
    return 0


if __name__ == "__main__":
    sys.exit(main())
