"""CallbackHandler skips TrainerCallback's no-op events but calls every override, also one given to an
instance or to a callback added (or removed) between two calls, with the references and the event's kwargs."""

from __future__ import annotations

from xf_train import TrainerCallback, TrainerControl, TrainerState
from xf_train._callbacks import CallbackHandler


class OnLog(TrainerCallback):
    def __init__(self, seen: list) -> None:
        self.seen = seen

    def on_log(self, args, state, control, **kwargs):
        self.seen.append(("log", type(self).__name__, kwargs["model"], kwargs["logs"]))


class Stopper(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        return TrainerControl(should_training_stop=True)


def test_dispatch_follows_the_callbacks_list_and_skips_only_no_ops():
    seen: list = []
    quiet = TrainerCallback()
    handler = CallbackHandler([quiet, OnLog(seen)], model="M")
    state, control = TrainerState(), TrainerControl()
    handler.call("on_log", None, state, control, logs={"loss": 1.0})
    handler.call("on_step_end", None, state, control)
    assert seen == [("log", "OnLog", "M", {"loss": 1.0})]
    assert handler._listening("on_step_end") == [] and handler._listening("on_log") == handler.callbacks[1:]

    quiet.on_step_end = lambda args, state, control, **kw: seen.append(("instance", kw["model"]))  # type: ignore[method-assign]
    handler.call("on_step_end", None, state, control)
    assert seen[-1] == ("instance", "M") and not control.should_training_stop
    handler.add_callback(Stopper)
    handler.call("on_step_end", None, state, control)
    assert seen[-2:] == [("instance", "M")] * 2 and control.should_training_stop

    handler.pop_callback(OnLog)
    handler.call("on_log", None, state, control, logs={"loss": 2.0})
    assert len([s for s in seen if s[0] == "log"]) == 1
    second = OnLog(seen)
    handler.callbacks.append(second)  # the list itself, as transformers' handler exposes it
    handler.call("on_log", None, state, control, logs={"loss": 3.0})
    assert seen[-1] == ("log", "OnLog", "M", {"loss": 3.0})
