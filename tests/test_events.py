"""Worker events: what crosses the pipe is a plain dict, read back as the same typed event."""

import pickle

from ademix_sweep.engine.events import Event, decode, encode


def test_an_event_survives_the_pipe_unchanged():
    event = Event("worker_died", 3, time=12.5, exitcode=-9, requeued=(("sweep.adamw", 4),))
    wire = encode(event)
    assert wire == {"kind": "worker_died", "rank": 3, "time": 12.5, "exitcode": -9, "requeued": (("sweep.adamw", 4),)}
    assert decode(pickle.loads(pickle.dumps(wire))) == event


def test_decode_drops_keys_it_does_not_know_and_lists_become_tuples():
    event = decode({"kind": "start", "rank": 1, "time": 1.0, "trial": 7, "from_a_newer_worker": True})
    assert (event.kind, event.rank, event.trial, event.optimizer) == ("start", 1, 7, None)
    assert decode({"kind": "worker_died", "requeued": [["s", 1]]}).requeued == (["s", 1],)


def test_a_trial_event_keeps_its_base_fields_and_says_when_the_trial_ended():
    base = Event("start", 2, time=0.0, optimizer="ademamix", trial=5, device="cpu", steps=100)
    done = base.but(kind="complete", value=1.5)
    assert (done.optimizer, done.trial, done.rank, done.value, done.steps) == ("ademamix", 5, 2, 1.5, 100)
    assert done.time > 0 and done.ended and not base.ended
    assert [k for k in ("progress", "eval", "pruned", "timeout", "surplus") if Event(k).ended] == [
        "pruned",
        "timeout",
        "surplus",
    ]
