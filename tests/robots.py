"""A test robot that wraps another: every call goes to the wrapped robot, with a hook around one action."""
from __future__ import annotations

from typing import Callable

from cotrain_robot.robot import Robot


class OnAction(Robot):
    """Delegates to `inner`; calls `before()` just before its `n`-th action is sent and `after()` just after."""

    def __init__(self, inner: Robot, n: int, before: Callable[[], None] | None = None,
                 after: Callable[[], None] | None = None):
        self.inner, self.n, self.before, self.after, self.count = inner, n, before, after, 0

    def connect(self):
        self.inner.connect()

    def reset(self, seed=None):
        self.inner.reset(seed)

    def get_observation(self):
        return self.inner.get_observation()

    def send_action(self, action):
        self.count += 1
        if self.count == self.n and self.before:
            self.before()
        self.inner.send_action(action)
        if self.count == self.n and self.after:
            self.after()

    def done(self):
        return self.inner.done()

    def success(self):
        return self.inner.success()

    def info(self):
        return self.inner.info()
