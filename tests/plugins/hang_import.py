"""A plugin whose import never ends."""

import threading

threading.Event().wait()  # forever (the test's loader gives up and marks it hung)
